"""The Forecaster: a cell, a readout and a loss mode, trained to predict the next point."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, MinMetric

from rnnlab import metrics as M
from rnnlab.config import choices
from rnnlab.config.schema import ModelConfig
from rnnlab.internals import CheapHookName
from rnnlab.models.cells import build_cell, initialize
from rnnlab.models.network import NetworkEnd, Networks, Readout

# Evaluation metrics are updated per step and logged once per epoch: a per-step
# ``self.log(name, metric)`` makes Lightning move the whole Metric to the device on every
# call, which costs more than the evaluation step itself for these small models.
_VAL_METRICS = {
    M.VAL_LOSS: "val_loss",
    M.VAL_MSE: "val_mse",
    M.VAL_MAE: "val_mae",
    M.VAL_PERSISTENCE_MSE: "val_persistence",
}
_TEST_METRICS = {
    M.TEST_MSE: "test_mse",
    M.TEST_MAE: "test_mae",
    M.PERSISTENCE_MSE: "test_persistence",
}


class Diverged(RuntimeError):
    """Raised when the training loss (or ``what`` else) stops being finite; the run is then
    reported as diverged."""

    def __init__(self, epoch: int, step: int, loss: float, what: str = "loss") -> None:
        super().__init__(f"{what} became {loss} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.loss = epoch, step, loss


#: The module of each ``model.readout_activation``.
READOUT_ACTIVATIONS: dict[str, type[nn.Module]] = {"identity": nn.Identity, "tanh": nn.Tanh}


class LinearReadout(nn.Module):
    """``y_t = W h_t + b``."""

    def __init__(
        self, hidden_size: int, input_size: int, output_size: int, activation: str = "identity"
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, output_size)
        self.act = choices.lookup("model.readout_activation", activation, READOUT_ACTIVATIONS)()

    def forward(self, x: torch.Tensor, h_prev: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(self.features(x, h_prev, h)))

    @staticmethod
    def features(x: torch.Tensor, h_prev: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """What the Linear reads: ``h_t``."""
        return h


class ConcatReadout(nn.Module):
    """The concat cell's output: ``y_t = act(W [h_{t-1}, x_t] + b)``."""

    def __init__(
        self, hidden_size: int, input_size: int, output_size: int, activation: str = "tanh"
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size + input_size, output_size)
        self.act = choices.lookup("model.readout_activation", activation, READOUT_ACTIVATIONS)()

    def forward(self, x: torch.Tensor, h_prev: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(self.features(x, h_prev, h)))

    @staticmethod
    def features(x: torch.Tensor, h_prev: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """What the Linear reads: ``[h_{t-1}, x_t]``."""
        return torch.cat([h_prev, x], dim=-1)


#: The readout of each ``model.readout``.
READOUTS: dict[str, type[LinearReadout | ConcatReadout]] = {
    "linear": LinearReadout,
    "concat": ConcatReadout,
}


def read_out(readout: Readout, x: torch.Tensor, h: torch.Tensor, last_only: bool) -> torch.Tensor:
    """Per-step predictions from the inputs ``x`` and hidden states ``h`` (time on dimension -2,
    any leading dimensions): ``readout(x_t, h_{t-1}, h_t)`` at every step, ``h_0`` being zero;
    with ``last_only`` the final step's only, time kept as a dimension of size 1."""
    if last_only:
        h_prev = h[..., -2, :] if h.shape[-2] > 1 else torch.zeros_like(h[..., -1, :])
        return readout(x[..., -1, :], h_prev, h[..., -1, :]).unsqueeze(-2)
    h_prev = torch.cat([torch.zeros_like(h[..., :1, :]), h[..., :-1, :]], dim=-2)
    return readout(x, h_prev, h)


@torch.no_grad()
def feed_back(
    predict: Callable[..., torch.Tensor], context: torch.Tensor, steps: int
) -> torch.Tensor:
    """``steps`` predictions, each fed back as the next input: every one sees the last ``L``
    points of the window, exactly as in training (time on dimension -2, any leading dimensions;
    ``predict(window, last_only=True)`` is a Forecaster's ``forward``)."""
    window, preds = context, []
    for _ in range(steps):
        nxt = predict(window, last_only=True)
        preds.append(nxt)
        window = torch.cat([window[..., 1:, :], nxt], dim=-2)
    return torch.cat(preds, dim=-2)


class EpochLoss:
    """The mean training loss of the epoch so far, ``train/loss``: each batch's loss weighted by
    its size. One number per network: a 0-d tensor, or ``(R,)`` for replicas."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.shape = shape
        self.reset()

    def reset(self, device: torch.device | str | None = None) -> None:
        self.total, self.count = torch.zeros(self.shape, device=device), 0

    def add(self, loss: torch.Tensor, n: int) -> None:
        self.total = self.total + loss * n
        self.count += n

    def mean(self) -> torch.Tensor:
        return self.total / max(self.count, 1)


def _last(t: torch.Tensor) -> torch.Tensor:
    """The final step of a window batch, contiguous as torchmetrics requires."""
    return t[:, -1].contiguous()


class Forecaster(CheapHookName, L.LightningModule):
    """Predicts ``series[t+1]`` from ``series[t-L+1..t]`` at every step of a window.

    ``loss="last"`` trains on the final step only (as the concat cell's source text does),
    ``"every"`` on all steps.
    Validation and test metrics always score the final step, so both modes compare.
    ``compile=True`` runs the Python-loop cells' time step through ``torch.compile``.

    A run of one network: what the job driver and the callbacks read of it
    (rnnlab.models.network.NetworkModule) is at the end of the class.
    """

    keeps_best_weights = False  # its best weights are the best checkpoint, which testing loads

    def __init__(
        self,
        cell: str,
        input_size: int = 2,
        hidden_size: int = ModelConfig.hidden_size,
        num_layers: int = ModelConfig.num_layers,
        nonlinearity: str = ModelConfig.nonlinearity,
        readout: str = ModelConfig.readout,
        readout_activation: str = ModelConfig.readout_activation,
        loss: str = ModelConfig.loss,
        optimizer: str = ModelConfig.optimizer,
        lr: float = ModelConfig.lr,
        momentum: float = ModelConfig.momentum,
        weight_decay: float = ModelConfig.weight_decay,
        scheduler: str = ModelConfig.scheduler,
        compile: bool = ModelConfig.compile,
        init: str = ModelConfig.init,
        output_size: int | None = None,
    ) -> None:
        super().__init__()
        output_size = input_size if output_size is None else output_size
        choices.check_choice("model.loss", loss, choices.LOSS_MODES)
        choices.check_choice("model.scheduler", scheduler, choices.SCHEDULERS)
        choices.check_cell_keys(cell, nonlinearity, init)
        choices.check_choice("model.optimizer", optimizer, choices.OPTIMIZERS)
        self.save_hyperparameters()
        # Drawn before the cells build their own layers, which draw different amounts each;
        # rnnlab.models.cells.initialize checks the scheme's name.
        init_seed = None if init == "native" else int(torch.randint(2**62, ()).item())
        self.cell = build_cell(cell, input_size, hidden_size, num_layers, nonlinearity, compile)
        readout_cls = choices.lookup("model.readout", readout, READOUTS)
        self.readout = readout_cls(hidden_size, input_size, output_size, readout_activation)
        if init_seed is not None:
            self._initialize(init, torch.Generator().manual_seed(init_seed))
        # "the next point equals the last one": a baseline only where the model predicts its input
        self.persistence = output_size == input_size

        self.val_loss = MeanMetric(nan_strategy="disable")  # a NaN loss must show, not vanish
        self.val_mse, self.val_mae = MeanSquaredError(), MeanAbsoluteError()
        self.val_mse_best = MinMetric()
        self.val_mse_best.persistent(True)  # in checkpoints, so a resumed run keeps its best
        self.val_persistence = MeanSquaredError()
        self.test_mse, self.test_mae = MeanSquaredError(), MeanAbsoluteError()
        self.test_persistence = MeanSquaredError()
        self._train_loss = EpochLoss()
        self.val_values: dict[str, torch.Tensor] = {}  # the last validation's, and its best
        self.test_values: dict[str, torch.Tensor] = {}
        self._weights: tuple[nn.Parameter, ...] = ()  # listed when training starts: grad_norms

    def _initialize(self, scheme: str, generator: torch.Generator) -> None:
        """Re-draw the cell (``scheme``, rnnlab.models.cells.initialize) and then the readout
        (nn.Linear's
        own U(+-1/sqrt(fan_in))) from one generator seeded from the global seed: every cell draws
        the same numbers in nn.RNN's order, so cells built with the same seed start alike, and
        their readouts too. ``native`` draws nothing here, which keeps its runs as they were."""
        initialize(self.cell, scheme, generator)
        with torch.no_grad():
            bound = self.readout.linear.in_features**-0.5
            for param in (self.readout.linear.weight, self.readout.linear.bias):
                param.uniform_(-bound, bound, generator=generator)

    # -- the network -----------------------------------------------------------------------
    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The top layer's hidden states ``(B, L, H)``."""
        return self.cell(x)[0]

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Per-step predictions ``(B, L, C)``: entry ``t`` forecasts ``x[:, t + 1]``.

        ``last_only`` returns only the final step's, as ``(B, 1, C)``: all that the last-step
        loss, the metrics and the rollout need, without running the readout over every step.
        """
        return read_out(self.readout, x, self.hidden(x), last_only)

    def rollout(self, context: torch.Tensor, steps: int) -> torch.Tensor:
        """Forecast ``steps`` points ahead from ``context`` ``(B, L, C)``, feeding predictions
        back as inputs (:func:`feed_back`): ``(B, steps, C)``."""
        return feed_back(self, context, steps)

    def loss_fn(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.hparams.loss == "last":
            return nn.functional.mse_loss(pred[:, -1], target[:, -1])
        return nn.functional.mse_loss(pred, target)

    # -- training --------------------------------------------------------------------------
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        loss = self.loss_fn(self(x, last_only=self.hparams.loss == "last"), y)
        self._raise_if_diverged(loss)
        self._train_loss.add(loss.detach(), len(x))
        return loss

    def _raise_if_diverged(self, loss: torch.Tensor) -> None:
        bad = not torch.isfinite(loss).item()
        if self.trainer.world_size > 1:  # every rank must stop together
            bad = self.trainer.strategy.reduce_boolean_decision(bad, all=False)
        if bad:
            raise Diverged(self.current_epoch, self.global_step, loss.item())

    def on_train_epoch_start(self) -> None:
        self._train_loss.reset(self.device)

    def epoch_train_loss(self) -> torch.Tensor:
        """The mean training loss of the epoch so far (``train/loss`` at the epoch's end)."""
        return self._train_loss.mean()

    def on_train_epoch_end(self) -> None:
        # Logged once per epoch: per-step self.log costs more than the step itself here.
        self.log(M.TRAIN_LOSS, self.epoch_train_loss(), on_epoch=True, sync_dist=True)

    # -- evaluation ------------------------------------------------------------------------
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        pred = self(x, last_only=self.hparams.loss == "last")
        self.val_loss.update(self.loss_fn(pred, y), weight=len(x))
        pred_last, y_last = _last(pred), _last(y)
        self.val_mse.update(pred_last, y_last)
        self.val_mae.update(pred_last, y_last)
        if self.persistence:
            self.val_persistence.update(_last(x), y_last)

    def _reset_metrics(self, metrics: dict[str, str]) -> None:
        """At epoch start, not end: states must be created under the grad mode of the updates
        (a standalone ``validate`` runs in inference mode, validation inside ``fit`` does not)."""
        for attr in metrics.values():
            getattr(self, attr).reset()

    def _log_metrics(self, metrics: dict[str, str]) -> dict[str, torch.Tensor]:
        unused = () if self.persistence else (M.PERSISTENCE_MSE, M.VAL_PERSISTENCE_MSE)
        values = {n: getattr(self, a).compute() for n, a in metrics.items() if n not in unused}
        # Already reduced over processes by torchmetrics; sync_dist keeps Lightning from warning
        # about epoch-level values under DDP (on one device it does nothing).
        self.log_dict(values, sync_dist=True)
        return values

    def on_validation_epoch_start(self) -> None:
        self._reset_metrics(_VAL_METRICS)

    def on_validation_epoch_end(self) -> None:
        values = self._log_metrics(_VAL_METRICS)
        if self.trainer.sanity_checking:
            return
        self.val_mse_best(values[M.VAL_MSE])
        best = self.val_mse_best.compute()
        self.log(M.VAL_MSE_BEST, best)
        self.val_values = {**values, M.VAL_MSE_BEST: best}

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        pred_last, y_last = _last(self(x, last_only=True)), _last(y)
        self.test_mse.update(pred_last, y_last)
        self.test_mae.update(pred_last, y_last)
        if self.persistence:
            self.test_persistence.update(_last(x), y_last)

    def on_test_epoch_start(self) -> None:
        self._reset_metrics(_TEST_METRICS)

    def on_test_epoch_end(self) -> None:
        self.test_values = self._log_metrics(_TEST_METRICS)

    def configure_optimizers(self):
        return optimizer_and_schedule(self.parameters(), self.hparams, self.trainer.max_epochs)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse to save a model that is no longer finite: the run diverged here, and its last
        checkpoint stays its last finite one. (The loss check in ``training_step`` sees a NaN
        one step after the update that made it, and a finite training loss can still overflow
        on the validation split.)"""
        trainer = self.trainer
        val_mse = trainer.callback_metrics.get(M.VAL_MSE)
        if val_mse is not None and not torch.isfinite(val_mse):
            raise Diverged(trainer.current_epoch, trainer.global_step, float(val_mse), M.VAL_MSE)
        if not all(torch.isfinite(p).all() for p in self.parameters()):
            raise Diverged(trainer.current_epoch, trainer.global_step, math.nan, "weights")

    # -- the rest of what the job driver and the callbacks read (network.NetworkModule) --
    @property
    def alive(self) -> torch.Tensor:
        """Its one network: a Forecaster stops the run (Diverged) rather than outlive it."""
        return torch.ones(1, dtype=torch.bool, device=self.device)

    def train_losses(self) -> torch.Tensor:
        return self.epoch_train_loss()

    def on_train_start(self) -> None:
        # Listed once the weights sit on their device (moving them there may replace them):
        # self.parameters() walks every submodule, the metrics too, and on every step that
        # walk costs three times the norm itself.
        self._weights = tuple(self.parameters())

    def grad_norms(self) -> torch.Tensor:
        """The total gradient norm over its parameters, before clipping."""
        weights = self._weights or self.parameters()  # outside a fit: walked each time
        grads = [p.grad.reshape(-1) for p in weights if p.grad is not None]
        return torch.linalg.vector_norm(torch.cat(grads))

    def networks(self, tested: bool | torch.Tensor = False) -> Networks:
        """Its own weights: after ``trainer.test(ckpt_path=...)``, the checkpoint tested."""
        return Networks(self, self.cell, self.readout)

    def network_ends(self, tested: bool) -> list[NetworkEnd]:
        values = {**self.val_values, **(self.test_values if tested else {})}
        return [NetworkEnd(values, tested=tested)]


def _adam(params: Any, hparams: Any) -> torch.optim.Optimizer:
    # foreach: one kernel per update for all parameters; PyTorch's CPU default loops over
    # them in Python, about 10x slower for these few small tensors.
    return torch.optim.Adam(params, lr=hparams.lr, weight_decay=hparams.weight_decay, foreach=True)


def _sgd(params: Any, hparams: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params,
        lr=hparams.lr,
        momentum=hparams.momentum,
        weight_decay=hparams.weight_decay,
        foreach=True,
    )


#: ``model.optimizer``: each name's optimizer over ``params``, of ``model.lr``,
#: ``model.weight_decay`` (L2 in both: ``weight_decay * p`` added to the gradient) and, for
#: SGD, ``model.momentum``.
OPTIMIZERS: dict[str, Callable[[Any, Any], torch.optim.Optimizer]] = {"adam": _adam, "sgd": _sgd}


def optimizer_and_schedule(params: Any, hparams: Any, max_epochs: int | None) -> dict[str, Any]:
    """``model.optimizer`` with ``model.lr``, ``model.weight_decay`` (and SGD's
    ``model.momentum``), and ``model.scheduler``'s schedule over ``max_epochs``: what
    ``configure_optimizers`` returns (``optimizer``, and ``lr_scheduler`` unless the scheduler
    is ``none``), also for loops without a Trainer. Adam and SGD are both elementwise, so over
    stacked replica parameters each replica takes its own run's step."""
    build = choices.lookup("model.optimizer", hparams.optimizer, OPTIMIZERS)
    return with_schedule(build(params, hparams), hparams.scheduler, max_epochs)


def with_schedule(
    optimizer: torch.optim.Optimizer, scheduler: str, max_epochs: int | None
) -> dict[str, Any]:
    """``optimizer`` and ``model.scheduler``'s schedule over ``max_epochs``, as
    ``configure_optimizers`` returns them."""
    if scheduler == "none":  # choices.SCHEDULERS: cosine or none
        return {"optimizer": optimizer}
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(max_epochs or 1, 1))
    return {"optimizer": optimizer, "lr_scheduler": schedule}
