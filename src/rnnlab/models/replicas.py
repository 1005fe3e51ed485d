"""``replicas=R``: one job trains the networks of seeds ``seed .. seed+R-1`` of one configuration
together, as one batched network (rnnlab.models.replica_net), each exactly as in its own run.

Per replica, as in its own run:

- its initial weights: built by :class:`~rnnlab.models.forecaster.Forecaster` after
``torch.manual_seed(seed
  + r)``, what ``seed_everything(seed + r)`` does for a run of that seed;
- its data (rnnlab.data.tasks.ReplicaDataModule): its own order, and its own series or sequences
  where the task draws them from the seed;
- its loss: the training loss is the sum of the replicas' losses, so each gets its own
  gradient, learning rate and schedule;
- its gradient clipping (:meth:`ReplicaForecaster.configure_gradient_clipping`): each replica's
  norm, not the norm over all of them (which would couple the replicas);
- its divergence: a replica whose loss, validation MSE or weights stop being finite is frozen
  and recorded (epoch, step, what); the others go on; the job is diverged when all are;
- its best weights (``best``, kept in the checkpoint): the epoch of its lowest ``val/mse``,
  which its test scores.
"""

from __future__ import annotations

import copy
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.data import AttributeDict
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError

from rnnlab import metrics as M
from rnnlab.internals import CheapHookName
from rnnlab.models.forecaster import (
    Diverged,
    EpochLoss,
    Forecaster,
    optimizer_and_schedule,
    read_out,
)
from rnnlab.models.network import NetworkEnd, Networks
from rnnlab.models.replica_net import ReplicaNet


def _columns(t: torch.Tensor) -> torch.Tensor:
    """``(R, ...)`` to ``(N, R)``: the layout of torchmetrics' ``num_outputs=R``."""
    return t.flatten(1).T


def _rows(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(R,)`` per-network values shaped to broadcast over a stacked ``(R, ...)`` tensor."""
    return values.view(-1, *[1] * (like.dim() - 1))


def _each(metric: Any) -> torch.Tensor:
    """A ``num_outputs=R`` metric's value per network, ``(R,)`` (torchmetrics gives a 0-d
    tensor for one output: a pack of one network)."""
    return metric.compute().reshape(-1)


def _mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each network's mean squared error, ``(R,)``."""
    return nn.functional.mse_loss(pred, target, reduction="none").flatten(1).mean(1)


def _build(seed: int, replicas: int, forecaster: dict[str, Any]) -> list[Forecaster]:
    """The Forecasters that runs of seeds ``seed .. seed+R-1`` start from; the global RNG is
    left as it was."""
    networks = []
    with torch.random.fork_rng(devices=[]):
        for r in range(replicas):
            torch.manual_seed(seed + r)
            networks.append(Forecaster(**forecaster))
    return networks


class ReplicaForecaster(CheapHookName, L.LightningModule):
    """``replicas`` Forecasters of seeds ``seed ..``, trained and tested as one module.

    Batches are ``(R, B, L, C)``, replica r's at ``[r]`` (rnnlab.data.tasks.ReplicaDataModule). What
    Lightning logs (and checkpoints monitor) is the mean over the replicas still training; the
    per-replica values go to TensorBoard runs ``tb/replica_<r>`` (rnnlab.observe.tensorboard).
    What the job driver and the callbacks read of it (rnnlab.models.network.NetworkModule) is
    at the end of the class.
    """

    keeps_best_weights = True  # ``best``: each replica's, in every checkpoint; testing reads it

    def __init__(self, replicas: int = 2, seed: int = 0, **forecaster: Any) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._stack([seed + r for r in range(replicas)], [forecaster] * replicas)

    def _stack(self, seeds: list[int], configs: list[dict[str, Any]]) -> None:
        """Build network r as a run of seed ``seeds[r]`` with ``configs[r]`` builds its
        Forecaster, and stack them (one configuration for replicas; a pack's differ)."""
        networks = [_build(seed, 1, config)[0] for seed, config in zip(seeds, configs, strict=True)]
        self.row_seeds = list(seeds)
        self.row_hparams = [AttributeDict(net.hparams) for net in networks]
        self.forecaster_hparams = self.row_hparams[0]  # what the networks share
        self.persistence = networks[0].persistence
        self.net = ReplicaNet(networks, compile=self.forecaster_hparams["compile"])
        self.best = ReplicaNet(networks).requires_grad_(False)  # each replica's best epoch
        R = len(networks)
        last = [h["loss"] == "last" for h in self.row_hparams]
        self.register_buffer("loss_last", torch.tensor(last), persistent=False)
        self.last_only = all(last)  # every network's loss on the final step: read out only there
        self.mixed_loss = len(set(last)) > 1
        self.register_buffer("alive", torch.ones(R, dtype=torch.bool))
        self.register_buffer("best_val_mse", torch.full((R,), torch.inf))
        self.register_buffer("diverged_epoch", torch.full((R,), -1))
        self.register_buffer("diverged_step", torch.full((R,), -1))
        self.diverged_what: dict[int, str] = {}  # kept in checkpoints by on_save_checkpoint
        self._frozen: dict[int, dict[str, torch.Tensor]] = {}

        self.val_loss, self.val_mse = (
            MeanSquaredError(num_outputs=R),
            MeanSquaredError(num_outputs=R),
        )
        # a pack mixing loss modes: the every-step loss of each network, picked where it applies
        self.val_loss_every = MeanSquaredError(num_outputs=R) if self.mixed_loss else None
        self.val_mae, self.val_persistence = (
            MeanAbsoluteError(num_outputs=R),
            MeanSquaredError(num_outputs=R),
        )
        self.test_mse, self.test_mae = (
            MeanSquaredError(num_outputs=R),
            MeanAbsoluteError(num_outputs=R),
        )
        self.test_persistence = MeanSquaredError(num_outputs=R)
        self._train_loss = EpochLoss((R,))
        self.val_values: dict[str, torch.Tensor] = {}
        self.test_values: dict[str, torch.Tensor] = {}

    @property
    def replicas(self) -> int:
        return len(self.row_seeds)

    @property
    def seeds(self) -> list[int]:
        return list(self.row_seeds)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Top-layer hidden states ``(R, B, L, H)``."""
        return self.net.hidden(x)

    def replica(self, r: int, best: bool = True) -> Forecaster:
        """Replica ``r`` as an ordinary Forecaster (its best-validation weights, or the current
        ones), on this module's device, in eval mode."""
        model = _build(self.row_seeds[r], 1, self.row_hparams[r])[0]
        model.load_state_dict((self.best if best else self.net).replica_state(r), strict=False)
        return model.to(self.device).eval()

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        return self.net(x, last_only)

    def _losses(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Each replica's loss ``(R,)``: Forecaster.loss_fn's MSE per replica, on the final
        step or on every step as its ``model.loss`` says."""

        if not self.mixed_loss:
            return _mse(pred[:, :, -1], target[:, :, -1]) if self.last_only else _mse(pred, target)
        last, every = pred
        losses = (_mse(last[:, :, -1], target[:, :, -1]), _mse(every, target))
        return torch.where(self.loss_last, *losses)

    def _predictions(self, x: torch.Tensor) -> Any:
        """What the loss reads: each network's predictions (its final step's only where every
        network's loss is on the final step); a pack mixing loss modes reads out both ways, so
        that each network's loss and gradient are computed as in its own run."""
        if not self.mixed_loss:
            return self(x, last_only=self.last_only)
        h = self.net.hidden(x)
        return read_out(self.net.readout, x, h, True), read_out(self.net.readout, x, h, False)

    def _final_step(self, pred: Any) -> torch.Tensor:
        """Each network's prediction of the window's final step, ``(R, B, C)``."""
        if not self.mixed_loss:
            return pred[:, :, -1]
        last, every = pred
        return torch.where(_rows(self.loss_last, last[:, :, -1]), last[:, :, -1], every[:, :, -1])

    # -- training --------------------------------------------------------------------------
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        losses = self._losses(self._predictions(x), y)
        self._freeze(~torch.isfinite(losses.detach()), "loss")
        alive = self.alive
        self._train_loss.add(torch.where(alive, losses.detach(), 0), x.shape[1])
        return torch.where(alive, losses, 0).sum()  # a dead replica's NaN does not reach the sum

    def _freeze(self, bad: torch.Tensor, what: str) -> None:
        """Freeze the replicas still alive where ``bad``; raise Diverged when none is left."""
        if self.trainer.world_size > 1:  # every rank must freeze the same replicas
            bad = self.all_gather(bad).flatten(0, -2).any(0) if bad.dim() else bad
        newly = bad & self.alive
        if not newly.any():  # one host sync per step, as a single run's finiteness check
            return
        epoch, step = self.current_epoch, self.global_step
        for r in newly.nonzero().flatten().tolist():
            self.diverged_what[r] = what
            self._frozen[r] = self.net.replica_state(r)
        self.diverged_epoch[newly] = epoch
        self.diverged_step[newly] = step
        self.alive &= ~newly
        if not self.alive.any():
            raise Diverged(epoch, step, float("nan"), f"every replica's {what}")

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Each replica's gradient clipped by its own norm, as ``clip_grad_norm_`` clips a
        single run's; a frozen replica's gradient is zeroed first."""
        self._zero_frozen_grads()
        if not gradient_clip_val:
            return
        if gradient_clip_algorithm not in (None, "norm"):  # "value" clips elementwise anyway
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
            return
        coef = (gradient_clip_val / (self.net.grad_norms() + 1e-6)).clamp(max=1.0)
        self._scale_grads(coef)

    def _zero_frozen_grads(self) -> None:
        """A frozen replica's gradient is zero (its NaN would reach the norms and Adam)."""
        if not self.alive.all():
            for p in self.net.parameters():
                if p.grad is not None:
                    p.grad.copy_(torch.where(_rows(self.alive, p), p.grad, 0))

    def _scale_grads(self, coef: torch.Tensor) -> None:
        """Multiply replica r's gradient by ``coef[r]``."""
        for p in self.net.parameters():
            if p.grad is not None:
                p.grad.mul_(_rows(coef, p))

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        for r, state in self._frozen.items():  # Adam's momentum would move a frozen replica
            self.net.load_replica(r, state)

    def on_train_start(self) -> None:
        # after a resume: the frozen replicas' weights are the checkpoint's
        self._frozen = {
            r: self.net.replica_state(r) for r in (~self.alive).nonzero().flatten().tolist()
        }

    def on_train_epoch_start(self) -> None:
        self._train_loss.reset(self.device)

    def train_losses(self) -> torch.Tensor:
        """Each replica's mean training loss of the epoch so far, ``(R,)``."""
        return self._train_loss.mean()

    def epoch_train_loss(self) -> torch.Tensor:
        """``train/loss``: the mean over the replicas still training."""
        return self.mean_alive(self.train_losses())

    def on_train_epoch_end(self) -> None:
        # the means through Lightning; each replica's by rnnlab.observe.tensorboard.ReplicaBoards
        self.log(M.TRAIN_LOSS, self.epoch_train_loss(), on_epoch=True, sync_dist=True)

    def mean_alive(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of ``values`` ``(R,)`` over the replicas still training (NaN: none)."""
        return values[self.alive].mean() if self.alive.any() else values.new_tensor(torch.nan)

    # -- evaluation ------------------------------------------------------------------------
    def _update(self, metrics: tuple[Any, ...], pred: torch.Tensor, target: torch.Tensor) -> None:
        for metric in metrics:
            metric.update(_columns(pred), _columns(target))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        pred = self._predictions(x)
        final = self._final_step(pred)
        if self.val_loss_every is not None:  # a pack mixing loss modes: both, picked per network
            self.val_loss_every.update(_columns(pred[1]), _columns(y))
        if self.last_only or self.mixed_loss:
            self.val_loss.update(_columns(final), _columns(y[:, :, -1]))
        else:
            self.val_loss.update(_columns(pred), _columns(y))
        self._update((self.val_mse, self.val_mae), final, y[:, :, -1])
        if self.persistence:
            self.val_persistence.update(_columns(x[:, :, -1]), _columns(y[:, :, -1]))

    def on_validation_epoch_start(self) -> None:
        for metric in (self.val_loss, self.val_mse, self.val_mae, self.val_persistence):
            metric.reset()
        if self.val_loss_every is not None:
            self.val_loss_every.reset()

    def on_validation_epoch_end(self) -> None:
        val_loss = _each(self.val_loss)
        if self.val_loss_every is not None:
            val_loss = torch.where(self.loss_last, val_loss, _each(self.val_loss_every))
        values = {
            M.VAL_LOSS: val_loss,
            M.VAL_MSE: _each(self.val_mse),
            M.VAL_MAE: _each(self.val_mae),
        }
        if self.persistence:
            values[M.VAL_PERSISTENCE_MSE] = _each(self.val_persistence)
        if self.trainer.sanity_checking:
            return
        val = values[M.VAL_MSE]
        improved = self.alive & (val < self.best_val_mse)  # ModelCheckpoint's mode="min": strict
        self.best_val_mse = torch.where(improved, val, self.best_val_mse)
        self.best.copy_rows(self.net, improved)
        values[M.VAL_MSE_BEST] = self.best_val_mse.clone()
        # each replica's latest values while it trained (what ReplicaBoards logs)
        self.val_values = {
            k: torch.where(self.alive, v, self.val_values[k]) if k in self.val_values else v.clone()
            for k, v in values.items()
        }
        self.log_dict({k: self.mean_alive(v) for k, v in values.items()}, sync_dist=True)
        # a Forecaster refuses to save such a model (it diverged there); a replica is frozen
        finite = torch.stack([p.isfinite().flatten(1).all(1) for p in self.net.parameters()])
        self._freeze(~torch.isfinite(val), M.VAL_MSE)
        self._freeze(~finite.all(0), "weights")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        pred = self.best(x, last_only=True)  # each replica's best-validation weights
        self._update((self.test_mse, self.test_mae), pred[:, :, -1], y[:, :, -1])
        if self.persistence:
            self.test_persistence.update(_columns(x[:, :, -1]), _columns(y[:, :, -1]))

    def on_test_epoch_start(self) -> None:
        for metric in (self.test_mse, self.test_mae, self.test_persistence):
            metric.reset()

    def on_test_epoch_end(self) -> None:
        values = {M.TEST_MSE: _each(self.test_mse), M.TEST_MAE: _each(self.test_mae)}
        if self.persistence:
            values[M.PERSISTENCE_MSE] = _each(self.test_persistence)
        self.test_values = values
        self.log_dict({k: self.mean_alive(v) for k, v in values.items()}, sync_dist=True)

    def configure_optimizers(self):
        # Adam and SGD are elementwise: over the stacked parameters each replica takes its own
        # run's step
        hparams = self.forecaster_hparams
        return optimizer_and_schedule(self.net.parameters(), hparams, self.trainer.max_epochs)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["replicas_diverged_what"] = dict(self.diverged_what)
        checkpoint["replicas_last_val"] = {k: v.cpu() for k, v in self.val_values.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.diverged_what = dict(checkpoint.get("replicas_diverged_what", {}))
        self.val_values = dict(checkpoint.get("replicas_last_val", {}))

    # -- the rest of what the job driver and the callbacks read (network.NetworkModule) --
    def grad_norms(self) -> torch.Tensor:
        """Each replica's total gradient norm, ``(R,)``."""
        return self.net.grad_norms()

    def networks(self, tested: bool | torch.Tensor = False) -> Networks:
        """The stacked weights: where ``tested``, each replica's best-validation weights (what
        its test scored), else its current ones (a frozen replica's: those it diverged with)."""
        tested = torch.as_tensor(tested, device=self.device).expand(self.replicas)
        net = self.net
        if tested.all():
            net = self.best
        elif tested.any():
            net = copy.deepcopy(self.best)
            net.copy_rows(self.net, ~tested)
        return Networks(net, net, net.readout)

    def network_ends(self, tested: bool) -> list[NetworkEnd]:
        ends = []
        for r in range(self.replicas):
            values: dict[str, Any] = {k: v[r] for k, v in self.val_values.items()}
            values[M.VAL_MSE_BEST] = self.best_val_mse[r]
            alive = bool(self.alive[r])
            if tested and alive:  # its best-validation weights' test (test_step)
                values |= {k: v[r] for k, v in self.test_values.items()}
            diverged = None
            if not alive:
                diverged = {
                    "error": f"{self.diverged_what.get(r, 'loss')} stopped being finite",
                    "diverged_epoch": int(self.diverged_epoch[r]),
                    "diverged_step": int(self.diverged_step[r]),
                }
            ends.append(NetworkEnd(values, tested=tested and alive, diverged=diverged))
        return ends
