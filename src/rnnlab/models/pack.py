"""A pack: the networks of several differently configured jobs trained as one batched network
(``hydra/launcher=fused``, rnnlab.training.fused), each exactly as in its own run.

A pack is a :class:`~rnnlab.models.replicas.ReplicaForecaster` whose networks need not share a
configuration: row r is built as a run of its own seed and ``model`` config builds its
Forecaster (initial weights, ``model.init``, ``model.nonlinearity``), trains on its own data
in its own order, with its own loss mode, and is frozen and recorded on its own when it
diverges, as the replicas of one configuration are. What a pack adds is what replicas share
through the Trainer and the optimizer:

- ``model.lr``, ``model.weight_decay`` and SGD's ``model.momentum`` per network
  (:class:`StackedAdam`, :class:`StackedSGD`, by ``model.optimizer``, one per pack): Adam's
  step does not depend on the gradient's scale, so a per-network learning rate cannot come
  from scaling gradients; the stacked optimizer keeps each row's state (Adam's moments, SGD's
  momentum buffer) and takes each row's step with its own rate, decay and momentum, under the
  schedule all rows share (its factor is the group's ``lr``);
- ``trainer.gradient_clip_val`` per network (null: none), each clipping its own gradient's norm
  (or its values, with ``gradient_clip_algorithm=value``).

Which jobs may share a pack, and how their rows are ordered, is rnnlab.training.fused's.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import lightning as L
import torch

from rnnlab.config import choices
from rnnlab.models.forecaster import with_schedule
from rnnlab.models.replicas import ReplicaForecaster, _rows


class RowValues:
    """A per-row coefficient (``(N,)``: each network's learning rate, weight decay) as runs of
    adjacent rows that share a value, but those of ``skip`` (a decay of 0: nothing to apply):
    ``for value, rows in row_values: t[rows].add_(..., alpha=value)`` applies each value by the
    very operation torch's optimizer applies it with as a number, on a view of its rows, so each
    row gets that operation's rounding; one operation per run (one in all where every row has
    the same value; rnnlab.training.fused puts a job's rows, its replicas, next to each other)."""

    def __init__(self, values: torch.Tensor, skip: float | None = None) -> None:
        self.runs: list[tuple[float, slice]] = []
        start = 0
        for value, run in itertools.groupby(values.tolist()):
            stop = start + len(list(run))
            if value != skip:
                self.runs.append((value, slice(start, stop)))
            start = stop

    def __bool__(self) -> bool:
        return bool(self.runs)

    def __iter__(self) -> Iterator[tuple[float, slice]]:
        return iter(self.runs)


class StackedOptimizer(torch.optim.Optimizer):
    """What :class:`StackedAdam` and :class:`StackedSGD` share: parameters stacked on a leading
    dimension of networks, row r with its own learning rate ``lr[r]`` and L2 weight decay
    ``weight_decay[r]`` (added to the gradient, as torch's optimizers add it). The param group's
    ``lr`` is a factor on every row's rate (1 at the start): a learning-rate schedule sets it,
    as it sets a lone optimizer's ``lr``. ``row_keys``: the Forecaster's keys each row has, the
    keyword arguments of the subclass.

    A subclass's :meth:`_update` takes each row's step in the floating-point operations of the
    torch optimizer it stands for (tests/test_pack.py compares them bit for bit)."""

    row_keys: tuple[str, ...] = ("lr", "weight_decay")
    #: the torch optimizer's class name, which Lightning's LearningRateMonitor puts in ``lr-<name>``
    stands_for = ""

    def __init__(
        self,
        params: Any,
        lr: Sequence[float],
        weight_decay: Sequence[float],
        defaults: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(params, {"lr": 1.0, **(defaults or {})})
        self.row_lr = torch.as_tensor(lr, dtype=torch.float64)
        self.row_weight_decay = torch.as_tensor(weight_decay, dtype=torch.float64)
        self.decays = RowValues(self.row_weight_decay, skip=0.0)

    def _decayed(self, grad: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """``grad + weight_decay[r] * p`` row by row, as torch's ``grad.add(p, alpha=wd)``."""
        if not self.decays:
            return grad
        grad = grad.clone()
        for decay, rows in self.decays:
            grad[rows].add_(p[rows], alpha=decay)
        return grad

    def rates(self) -> torch.Tensor:
        """Each row's learning rate now, ``(N,)`` in float64: its own times the schedule's."""
        return self.row_lr * self.param_groups[0]["lr"]

    def _update(
        self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, self._decayed(p.grad, p), self.state[p], group)
        return loss


class StackedAdam(StackedOptimizer):
    """Adam (``torch.optim.Adam``'s update) per row: row r takes the step
    ``torch.optim.Adam(lr=lr[r], weight_decay=weight_decay[r])`` takes on that row alone: the
    decay by each run of rows in turn, the step size in double precision then cast, and
    ``addcdiv`` as Adam's own update."""

    stands_for = "Adam"

    def __init__(
        self,
        params: Any,
        lr: Sequence[float],
        weight_decay: Sequence[float],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, lr, weight_decay, {"betas": betas, "eps": eps})

    def _update(
        self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t = state["step"].item()
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(grad, 1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        # Adam: p += (-lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
        step_size = -self.rates() / (1 - beta1**t)
        denom = (v.sqrt() / (1 - beta2**t) ** 0.5).add_(group["eps"])
        p.addcdiv_(m * _rows(step_size.to(p.device, p.dtype), p), denom)


class StackedSGD(StackedOptimizer):
    """SGD with momentum (``torch.optim.SGD``'s update, no dampening, no Nesterov) per row: row
    r takes the step ``torch.optim.SGD(lr=lr[r], momentum=momentum[r],
    weight_decay=weight_decay[r])`` takes on that row alone::

        g = grad + weight_decay[r] p
        buf = g                         at the first step, then  buf = momentum[r] buf + g
        p = p - lr[r] buf

    A row of momentum 0 steps along ``g`` itself (``0 buf + g`` is ``g``), as torch's SGD,
    which keeps no buffer then. ``momentum[r] buf`` is one float32 product, as torch's (it
    multiplies by the momentum as a float32 number); the step, torch's fused
    ``p.add_(buf, alpha=-lr)``, is taken on the rows of each learning rate in turn."""

    row_keys = ("lr", "momentum", "weight_decay")
    stands_for = "SGD"

    def __init__(
        self,
        params: Any,
        lr: Sequence[float],
        momentum: Sequence[float],
        weight_decay: Sequence[float],
    ) -> None:
        super().__init__(params, lr, weight_decay)
        self.row_momentum = torch.as_tensor(momentum, dtype=torch.float32)
        self.rates_of = RowValues(self.row_lr)
        self.with_momentum = bool(self.row_momentum.any())

    def _update(
        self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        if self.with_momentum:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.clone()
            else:
                m = _rows(self.row_momentum.to(p.device), p)
                state["momentum_buffer"].mul_(m).add_(grad)
            grad = state["momentum_buffer"]
        for lr, rows in self.rates_of:
            p[rows].add_(grad[rows], alpha=-(lr * group["lr"]))


class PackForecaster(ReplicaForecaster):
    """The networks of a pack, ``networks[r]`` a dict of one network's ``seed``, ``clip`` (its
    ``trainer.gradient_clip_val``, None for none) and its Forecaster keyword arguments.

    Everything but the cell's arithmetic and layout may differ between networks: ``lr``,
    ``weight_decay``, ``momentum``, ``init``, ``nonlinearity``, ``loss``, the seed, the
    clipping; the rest (sizes, cell, readout, optimizer, schedule) is one for the pack.
    ``clip_algorithm``: the Trainer's ``gradient_clip_algorithm`` the jobs share.
    """

    def __init__(self, networks: Sequence[dict[str, Any]], clip_algorithm: str = "norm") -> None:
        L.LightningModule.__init__(self)
        self.save_hyperparameters()
        configs = [{k: v for k, v in n.items() if k not in ("seed", "clip")} for n in networks]
        self._stack([int(n["seed"]) for n in networks], configs)
        clips = [math.inf if n.get("clip") is None else float(n["clip"]) for n in networks]
        self.register_buffer("clip", torch.tensor(clips), persistent=False)
        self.clip_algorithm = clip_algorithm or "norm"

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Each network's gradient clipped with its own ``clip`` (the Trainer clips nothing)."""
        self._zero_frozen_grads()
        if not torch.isfinite(self.clip).any():
            return
        if self.clip_algorithm == "value":
            for p in self.net.parameters():
                if p.grad is not None:
                    bound = _rows(self.clip, p)
                    p.grad.copy_(torch.maximum(torch.minimum(p.grad, bound), -bound))
            return
        # max_norm / (norm + 1e-6), as clip_grad_norm_ computes it with a Python float:
        # torch divides a number by a tensor as the tensor's reciprocal times the number
        coef = ((self.net.grad_norms() + 1e-6).reciprocal() * self.clip).clamp(max=1.0)
        self._scale_grads(torch.where(torch.isfinite(self.clip), coef, 1.0))

    def configure_optimizers(self):
        hparams = self.forecaster_hparams  # model.optimizer: one for the pack
        stacked = choices.lookup("model.optimizer", hparams["optimizer"], STACKED_OPTIMIZERS)
        rows = {key: [h[key] for h in self.row_hparams] for key in stacked.row_keys}
        optimizer = stacked(self.net.parameters(), **rows)
        return with_schedule(optimizer, hparams["scheduler"], self.trainer.max_epochs)

    def learning_rates(self) -> torch.Tensor:
        """Each network's learning rate now, ``(N,)`` (what ``lr-Adam`` or ``lr-SGD`` shows for
        a run)."""
        return self.trainer.optimizers[0].rates().float()

    def learning_rate_tag(self) -> str:
        """The tag Lightning's LearningRateMonitor gives a run's learning rate: ``lr-Adam``."""
        return f"lr-{self.trainer.optimizers[0].stands_for}"


#: ``model.optimizer``: the stacked optimizer of each name (rnnlab.models.forecaster.OPTIMIZERS).
STACKED_OPTIMIZERS: dict[str, type[StackedOptimizer]] = {"adam": StackedAdam, "sgd": StackedSGD}
