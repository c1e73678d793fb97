"""Learning-rate schedule: linear warm-up then cosine decay to zero (Loshchilov & Hutter 2017; SimCLR).

A pure function of the step, so a resumed run follows exactly the same curve.

>>> [round(warmup_cosine(s, total_steps=10, base_lr=1.0, warmup_steps=2), 3) for s in (0, 1, 2, 9)]
[0.5, 1.0, 1.0, 0.038]
"""
from __future__ import annotations

import math

__all__ = ["warmup_cosine"]


def warmup_cosine(step: int, *, total_steps: int, base_lr: float, warmup_steps: int) -> float:
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    return base_lr * 0.5 * (1 + math.cos(math.pi * min(step - warmup_steps, span) / span))
