"""<run dir>/csv/metrics.csv: one row per epoch next to TensorBoard (rnnlab.observe.csv_log)."""

import csv
import json

import pytest

from rnnlab import metrics as M
from rnnlab.observe.csv_log import CSV_FILE, EpochCSVLogger
from rnnlab.training.experiment import build_trainer, train_and_test

SHORT = ("data.n_points=300", "trainer.max_epochs=2", "logger.figures=false")


def rows(run_dir):
    with (run_dir / CSV_FILE).open(newline="") as file:
        return list(csv.DictReader(file))


def epoch_rows(run_dir):
    return [r for r in rows(run_dir) if r["epoch"] != ""]


def test_two_epoch_run_writes_one_csv_row_per_epoch(compose_cfg, tmp_path):
    result = train_and_test(compose_cfg(*SHORT), tmp_path)
    epochs = epoch_rows(tmp_path)
    assert [r["epoch"] for r in epochs] == ["0", "1"]
    for row in epochs:
        for name in (M.TRAIN_LOSS, M.VAL_MSE, M.VAL_MSE_BEST, "lr-Adam", M.GRAD_NORM):
            assert float(row[name]) > 0, (name, row)
    steps = [int(r["step"]) for r in epochs]
    assert steps[1] == result["steps"] - 1 and steps[0] == result["steps"] // 2 - 1
    # the last epoch's numbers are metrics.json's; the step after it holds the test metrics
    assert float(epochs[-1][M.VAL_MSE_BEST]) == pytest.approx(result[M.VAL_MSE_BEST])
    test = [r for r in rows(tmp_path) if r[M.TEST_MSE] != ""]
    assert len(test) == 1 and test[0]["epoch"] == "" and int(test[0]["step"]) == result["steps"]
    assert float(test[0][M.TEST_MSE]) == pytest.approx(result[M.TEST_MSE])
    assert json.loads((tmp_path / M.METRICS_FILE).read_text())["status"] == "ok"


def test_replicas_csv_holds_the_means_and_their_band(compose_cfg, tmp_path):
    train_and_test(compose_cfg(*SHORT, "replicas=2"), tmp_path)
    epochs = epoch_rows(tmp_path)
    assert len(epochs) == 2
    for row in epochs:
        low, mean, high = (float(row[M.VAL_MSE + s]) for s in ("_replica_min", "", "_replica_max"))
        assert low <= mean <= high and low < high
        assert float(row[M.TRAIN_LOSS + "_replica_min"]) <= float(row[M.TRAIN_LOSS])
    # how much gradient reaches the first step: each network's own, at initialisation (the row
    # of step 0) and after every epoch; their mean and band are the job's columns
    tag = M.diagnostics_tag(M.GRAD_FIRST_OVER_LAST)
    init = [r for r in rows(tmp_path) if r["epoch"] == "" and r["step"] == "0"]
    assert len(init) == 1
    for row in init + epochs:
        own = [float(row[M.network_column(tag, r)]) for r in range(2)]
        assert own[0] != own[1] and sum(own) / 2 == pytest.approx(float(row[tag]))
        assert (min(own), max(own)) == (
            float(row[tag + "_replica_min"]),
            float(row[tag + "_replica_max"]),
        )
    assert M.network_column(M.VAL_MSE, 0) not in epochs[0]  # the other values: mean and band


@pytest.mark.slow  # real fits; the fast suite keeps the one-row-per-epoch test
def test_tensorboard_stays_the_first_logger(compose_cfg, tmp_path):
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    trainer = build_trainer(compose_cfg(*SHORT), tmp_path)
    assert isinstance(trainer.logger, TensorBoardLogger) and len(trainer.loggers) == 2
    assert isinstance(trainer.loggers[1], EpochCSVLogger | CSVLogger)
    assert trainer.loggers[1].log_dir.rstrip("/") == str(tmp_path / "csv")


@pytest.mark.slow  # real fits; the fast suite keeps the one-row-per-epoch test
def test_a_resumed_run_keeps_its_earlier_rows(compose_cfg, tmp_path):
    train_and_test(compose_cfg(*SHORT), tmp_path)
    first = epoch_rows(tmp_path)
    longer = [o for o in SHORT if not o.startswith("trainer.max_epochs")]
    train_and_test(compose_cfg(*longer, "trainer.max_epochs=3", f"resume={tmp_path}"), tmp_path)
    epochs = epoch_rows(tmp_path)
    assert [r["epoch"] for r in epochs] == ["0", "1", "2"]
    assert epochs[:2] == first  # the first segment's rows, as they were
    assert len([r for r in rows(tmp_path) if r[M.TEST_MSE] != ""]) == 1  # the new test only
