"""Metric names: the one place they are spelled, shared by training, metrics.json and summaries."""

#: Each run's final record: written by rnnlab.training.experiment, read by rnnlab.analysis.summary.
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
LINEAR_MSE = "baseline/linear_mse"  # least squares on the flattened window (rnnlab.data.baselines)
VAL_LINEAR_MSE = "baseline/val_linear_mse"
MEAN_MSE = "baseline/mean_mse"  # the train mean: tasks without persistence (adding)

# Per-epoch training diagnostics (TensorBoard only; see rnnlab.observe.tensorboard).
GRAD_NORM = "train/grad_norm"  # mean over the epoch's steps, before clipping
GRAD_NORM_MAX = "train/grad_norm_max"
HIDDEN_MEAN_ABS = "health/h_mean_abs"  # top layer, first validation batch
HIDDEN_MAX_ABS = "health/h_max_abs"
TANH_SATURATED = "health/tanh_saturated_frac"  # |h| > 0.99
RELU_DEAD = "health/relu_dead_frac"  # units zero for every sample and step

# Gradient-flow diagnostics (rnnlab.observe.diagnostics): metrics.json's "diagnostics" holds the
# final values under these names; TensorBoard shows them per epoch under "diagnostics/<name>".
DIAGNOSTICS = "diagnostics"
SPECTRAL_RADIUS = "spectral_radius"  # of each layer's W_hh: > 1 is necessary for exploding
SIGMA_MAX = "sigma_max"  # largest singular value of each W_hh: < 1 is sufficient for vanishing
GRAD_NORM_BY_STEP = "grad_norm_by_step"  # ||dL/dh_t|| for every step t, L the last-step loss
GRAD_FIRST_OVER_LAST = "grad_first_over_last"  # how much of it reaches the first step
CLIPPED_FRACTION = "clipped_fraction"  # share of training steps whose gradient was clipped
GRAD_NORM_P50 = "grad_norm_p50"  # median unclipped gradient norm over the training steps
GRAD_NORM_P90 = "grad_norm_p90"


def first_over_last(norms: list[float]) -> float:
    """:data:`GRAD_FIRST_OVER_LAST` from :data:`GRAD_NORM_BY_STEP`: how much of the gradient
    reaches the window's first step, relative to its last step that gets any (the concat readout
    reads ``h_{t-1}``, so there it is the one before)."""
    reached = [n for n in norms if n > 0]
    return norms[0] / reached[-1] if reached else float("nan")


def diagnostics_tag(name: str) -> str:
    """The TensorBoard tag of a diagnostic."""
    return f"{DIAGNOSTICS}/{name}"


#: The values csv/metrics.csv keeps for each network of a job of several, as
#: :func:`network_column` (every other value: the mean and its band, ``<tag>_replica_min`` and
#: ``_max``): how much gradient reaches the first step, whose median over seeds the report
#: draws against epoch (rnnlab.analysis.report).
PER_NETWORK_CSV = (diagnostics_tag(GRAD_FIRST_OVER_LAST),)


def network_column(tag: str, r: int) -> str:
    """csv/metrics.csv's column of network ``r``'s own ``tag`` (replica r, seed ``seed + r``)."""
    return f"{tag}_replica_{r}"


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
    LINEAR_MSE,
    VAL_LINEAR_MSE,
    MEAN_MSE,
)
#: The same, in the order of TensorBoard's HParams columns (it shows the first five at first).
HPARAMS_METRICS = (
    VAL_MSE_BEST,
    TEST_MSE,
    TEST_ROLLOUT_MSE,
    PERSISTENCE_MSE,
    LINEAR_MSE,
    TEST_MAE,
    VAL_MSE,
    VAL_MAE,
    VAL_PERSISTENCE_MSE,
    VAL_LINEAR_MSE,
    MEAN_MSE,
)


#: The final numbers computed after testing, outside Lightning's logging
# (rnnlab.training.experiment).
AFTER_TEST = (TEST_ROLLOUT_MSE, LINEAR_MSE, VAL_LINEAR_MSE, MEAN_MSE)


def times_better(value: float | None, baseline: float | None) -> str | None:
    """``value`` against a baseline in words, lower being better: "9940x better" (baseline over
    value), "1.5x better", "1.21x worse"; None when either is missing or zero."""
    if not (value and baseline):
        return None
    ratio = baseline / value
    word = "better" if ratio >= 1 else "worse"
    ratio = max(ratio, 1 / ratio)
    shown = f"{ratio:.3g}" if ratio < 10 else f"{ratio:.0f}" if ratio < 1e4 else f"{ratio:.2g}"
    return f"{shown}x {word}"
