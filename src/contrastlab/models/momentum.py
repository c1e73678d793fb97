"""A momentum (exponential moving average) copy of a network: MoCo's key encoder (He et al. 2020), BYOL's target.

>>> online = torch.nn.Linear(2, 2)
>>> target = MomentumEncoder(online, momentum=0.9)
>>> target.update(online)
>>> all(not p.requires_grad for p in target.parameters())
True
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

__all__ = ["ema_update", "cosine_momentum", "MomentumEncoder"]


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, *, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online for parameters; buffers (BN statistics) are copied."""
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"`momentum` must be in [0, 1], got {momentum}")
    tp, op = list(target.parameters()), list(online.parameters())
    if len(tp) != len(op):
        raise ValueError(f"target has {len(tp)} parameters but online has {len(op)}: not the same architecture")
    torch._foreach_lerp_(tp, op, 1.0 - momentum)
    for bt, bo in zip(target.buffers(), online.buffers()):
        bt.copy_(bo)


def cosine_momentum(step: int, total_steps: int, *, base: float) -> float:
    """BYOL's schedule: from `base` at step 0 to 1 at the end."""
    if total_steps <= 0:
        return base
    return 1.0 - (1.0 - base) * (math.cos(math.pi * min(step, total_steps) / total_steps) + 1) / 2


class MomentumEncoder(nn.Module):
    """A frozen deep copy of `online`, moved toward it by `update()`. It follows its parent's train/eval mode, so
    in training its batch norm uses batch statistics, as MoCo's key encoder does."""

    def __init__(self, online: nn.Module, *, momentum: float = 0.99):
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"`momentum` must be in [0, 1], got {momentum}")
        self.momentum = momentum
        self.net = copy.deepcopy(online)
        for p in self.net.parameters():
            p.requires_grad_(False)

    def update(self, online: nn.Module, *, momentum: float | None = None) -> None:
        ema_update(self.net, online, momentum=self.momentum if momentum is None else momentum)

    def forward(self, *args, **kwargs):
        with torch.no_grad():
            return self.net(*args, **kwargs)
