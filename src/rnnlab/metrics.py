"""Metric names: the one place they are spelled, shared by training, metrics.json and summaries."""

#: Each run's final record: written by rnnlab.experiment, read by rnnlab.sweep.
METRICS_FILE = "metrics.json"

TRAIN_LOSS = "train/loss"
VAL_LOSS = "val/loss"
VAL_MSE = "val/mse"
VAL_MAE = "val/mae"
VAL_MSE_BEST = "val/mse_best"
TEST_MSE = "test/mse"
TEST_MAE = "test/mae"
TEST_ROLLOUT_MSE = "test/rollout_mse"
PERSISTENCE_MSE = "baseline/persistence_mse"
VAL_PERSISTENCE_MSE = "baseline/val_persistence_mse"

# Per-epoch training diagnostics (TensorBoard only; see rnnlab.tb_logging).
GRAD_NORM = "train/grad_norm"  # mean over the epoch's steps, before clipping
GRAD_NORM_MAX = "train/grad_norm_max"
HIDDEN_MEAN_ABS = "health/h_mean_abs"  # top layer, first validation batch
HIDDEN_MAX_ABS = "health/h_max_abs"
TANH_SATURATED = "health/tanh_saturated_frac"  # |h| > 0.99
RELU_DEAD = "health/relu_dead_frac"  # units zero for every sample and step

#: The final numbers of a run, in the order metrics.json and summaries show them.
FINAL_METRICS = (
    VAL_MSE_BEST,
    VAL_MSE,
    VAL_MAE,
    TEST_MSE,
    TEST_MAE,
    TEST_ROLLOUT_MSE,
    PERSISTENCE_MSE,
    VAL_PERSISTENCE_MSE,
)
#: The same, in the order of TensorBoard's HParams columns (it shows the first five at first).
HPARAMS_METRICS = (
    VAL_MSE_BEST,
    TEST_MSE,
    TEST_ROLLOUT_MSE,
    PERSISTENCE_MSE,
    TEST_MAE,
    VAL_MSE,
    VAL_MAE,
    VAL_PERSISTENCE_MSE,
)


def times_better(value: float | None, baseline: float | None) -> str | None:
    """``value`` against a baseline in words, lower being better: "9940x better" (baseline over
    value), "1.5x better", "1.2x worse"; None when either is missing or zero."""
    if not (value and baseline):
        return None
    ratio = baseline / value
    word = "better" if ratio >= 1 else "worse"
    ratio = max(ratio, 1 / ratio)
    return f"{ratio:.0f}x {word}" if ratio >= 10 else f"{ratio:.2g}x {word}"
