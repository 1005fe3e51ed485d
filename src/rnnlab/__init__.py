"""rnnlab: compare vanilla RNN variants with Lightning, Hydra and TensorBoard."""

__version__ = "0.1.0"
