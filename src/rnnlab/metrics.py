"""Metric names: the one place they are spelled, shared by training, metrics.json and summaries."""

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
