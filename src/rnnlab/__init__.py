"""rnnlab: compare vanilla RNN variants with Lightning, Hydra and TensorBoard."""

from rnnlab.run_names import register_resolvers

__version__ = "0.1.0"

# conf/config.yaml's run directory uses ${rnnlab.suffix:...}; any import of rnnlab
# (train.py, Hydra callbacks, tests) registers it before Hydra resolves the directory.
register_resolvers()
