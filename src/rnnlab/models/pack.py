"""A pack: the networks of several differently configured jobs trained as one batched network
(``hydra/launcher=fused``, rnnlab.training.fused), each exactly as in its own run.

A pack is a :class:`~rnnlab.models.replicas.ReplicaForecaster` whose networks need not share a
configuration: row r is built as a run of its own seed and ``model`` config builds its
Forecaster (initial weights, ``model.init``, ``model.nonlinearity``), trains on its own data
in its own order, with its own loss mode, and is frozen and recorded on its own when it
diverges, as the replicas of one configuration are. What a pack adds is what replicas share
through the Trainer and the optimizer:

- ``model.lr`` and ``model.weight_decay`` per network (:class:`StackedAdam`): Adam's step does
  not depend on the gradient's scale, so a per-network learning rate cannot come from scaling
  gradients; the stacked Adam keeps each row's moments and takes each row's step with its own
  rate and decay, under the schedule all rows share (its factor is the group's ``lr``);
- ``trainer.gradient_clip_val`` per network (null: none), each clipping its own gradient's norm
  (or its values, with ``gradient_clip_algorithm=value``).

Which jobs may share a pack, and how their rows are ordered, is rnnlab.training.fused's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch

from rnnlab.models.forecaster import with_schedule
from rnnlab.models.replicas import ReplicaForecaster, _rows


class StackedAdam(torch.optim.Optimizer):
    """Adam (``torch.optim.Adam``'s update, L2 weight decay added to the gradient) over
    parameters stacked on a leading dimension of networks, row r with learning rate ``lr[r]``
    and weight decay ``weight_decay[r]``. The param group's ``lr`` is a factor on every row's
    rate (1 at the start): a learning-rate schedule sets it, as it sets Adam's ``lr``.

    Each row takes the step ``torch.optim.Adam(lr=lr[r], weight_decay=weight_decay[r])`` takes
    on that row alone, in the same floating-point operations (tests/test_pack.py compares them
    bit for bit): the decay by each distinct value in turn, the step size in double precision
    then cast, and ``addcdiv`` as Adam's own update.
    """

    def __init__(
        self,
        params: Any,
        lr: Sequence[float],
        weight_decay: Sequence[float],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, {"lr": 1.0, "betas": betas, "eps": eps})
        self.row_lr = torch.as_tensor(lr, dtype=torch.float64)
        self.row_weight_decay = torch.as_tensor(weight_decay, dtype=torch.float64)
        self.decays = [d for d in self.row_weight_decay.unique().tolist() if d != 0]

    def _decayed(self, grad: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """``grad + weight_decay[r] * p`` row by row, as Adam's ``grad.add(p, alpha=wd)``."""
        for decay in self.decays:
            rows = _rows((self.row_weight_decay == decay).to(p.device), p)
            grad = torch.where(rows, grad.add(p, alpha=decay), grad)
        return grad

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                grad = self._decayed(p.grad, p) if self.decays else p.grad
                state["step"] += 1
                t = state["step"].item()
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(grad, 1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                # Adam: p += (-lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
                step_size = -(self.row_lr * group["lr"]) / (1 - beta1**t)
                denom = (v.sqrt() / (1 - beta2**t) ** 0.5).add_(group["eps"])
                p.addcdiv_(m * _rows(step_size.to(p.device, p.dtype), p), denom)
        return loss


class PackForecaster(ReplicaForecaster):
    """The networks of a pack, ``networks[r]`` a dict of one network's ``seed``, ``clip`` (its
    ``trainer.gradient_clip_val``, None for none) and its Forecaster keyword arguments.

    Everything but the cell's arithmetic and layout may differ between networks: ``lr``,
    ``weight_decay``, ``init``, ``nonlinearity``, ``loss``, the seed, the clipping; the rest
    (sizes, cell, readout, schedule) is one for the pack. ``clip_algorithm``: the Trainer's
    ``gradient_clip_algorithm`` the jobs share.
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
        lr = [h["lr"] for h in self.row_hparams]
        decay = [h["weight_decay"] for h in self.row_hparams]
        optimizer = StackedAdam(self.net.parameters(), lr=lr, weight_decay=decay)
        scheduler = self.forecaster_hparams["scheduler"]
        return with_schedule(optimizer, scheduler, self.trainer.max_epochs)

    def learning_rates(self) -> torch.Tensor:
        """Each network's learning rate now, ``(N,)`` (what ``lr-Adam`` shows for a run)."""
        optimizer = self.trainer.optimizers[0]
        return (optimizer.row_lr * optimizer.param_groups[0]["lr"]).float()
