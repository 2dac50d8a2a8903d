"""The optimiser of a plan and the learning rate of each step (a function of its position alone)."""

from __future__ import annotations

import math

import torch
from torch import nn

from fer_lib.engine.recipes import EXPONENTIAL_GAMMA, Plan

FUSED_DEVICES = ("cpu", "cuda")  # where torch has fused Adam, AdamW and SGD


def make_optimizer(plan: Plan, model: nn.Module, criterion: nn.Module) -> torch.optim.Optimizer:
    """The plan's optimiser. AdamW decays only the model's weight matrices and kernels (not norms,
    biases, positional embeddings or the criterion's class centres), as is usual for it.

    On CPU and CUDA parameters it is torch's fused implementation: the same update (within float
    rounding), one fused pass per tensor instead of several element-wise operations; DAF-MHSCA's training
    step at the demo's 48 px is about 1.12x faster on 2 CPU cores (docs/engine.md)."""
    params = [*model.parameters(), *criterion.parameters()]
    fused = all(p.device.type in FUSED_DEVICES for p in params) or None
    if plan.optimizer == "adam":
        return torch.optim.Adam(params, lr=plan.lr, weight_decay=plan.weight_decay, fused=fused)
    if plan.optimizer == "adamw":
        decay = [p for p in model.parameters() if p.ndim > 1]
        ids = {id(p) for p in decay}
        rest = [p for p in params if id(p) not in ids]
        groups = [{"params": decay, "weight_decay": plan.weight_decay}, {"params": rest, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=plan.lr, fused=fused)
    return torch.optim.SGD(params, lr=plan.lr, momentum=plan.momentum, weight_decay=plan.weight_decay, fused=fused)


def is_fused(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` runs torch's fused implementation (recorded in each run's env.json).

    Read from its parameter groups: a run resumed from a checkpoint keeps the implementation the
    checkpoint was saved with (``load_state_dict`` restores the groups' settings), so its update stays exact."""
    return all(group.get("fused") for group in optimizer.param_groups)


def lr_at(plan: Plan, epoch: int, step: int, steps_per_epoch: int) -> float:
    """The learning rate of one step, a function of its position alone (so a resumed run needs no scheduler state).

    ``none``: constant (Table 2). ``exponential``: lr * 0.6^epoch (DAN, DDAMFN). ``cosine``: linear
    warm-up over ``warmup_epochs``, then half a cosine down to zero at the last step.
    """
    if plan.schedule == "none":
        return plan.lr
    if plan.schedule == "exponential":
        return plan.lr * EXPONENTIAL_GAMMA**epoch
    t = epoch * steps_per_epoch + step
    warm = plan.warmup_epochs * steps_per_epoch
    if t < warm:
        return plan.lr * (t + 1) / warm
    total = plan.epochs * steps_per_epoch - warm
    return 0.5 * plan.lr * (1 + math.cos(math.pi * (t - warm) / max(1, total)))
