"""Learning-rate schedules: linear warm-up, then cosine decay to zero (Loshchilov & Hutter 2017; SimCLR) or
linear decay to zero (BERT's, and the Hugging Face trainer's default that sentence-transformers uses).

Pure functions of the step, so a resumed run follows exactly the same curve; :data:`SCHEDULES` names them for
``TrainConfig(schedule=...)``.

>>> [round(warmup_cosine(s, total_steps=10, base_lr=1.0, warmup_steps=2), 3) for s in (0, 1, 2, 9)]
[0.5, 1.0, 1.0, 0.038]
>>> [round(warmup_linear(s, total_steps=10, base_lr=1.0, warmup_steps=2), 3) for s in (0, 1, 2, 9)]
[0.5, 1.0, 1.0, 0.125]
"""
from __future__ import annotations

import math

__all__ = ["warmup_cosine", "warmup_linear", "SCHEDULES"]


def warmup_cosine(step: int, *, total_steps: int, base_lr: float, warmup_steps: int) -> float:
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    return base_lr * 0.5 * (1 + math.cos(math.pi * min(step - warmup_steps, span) / span))


def warmup_linear(step: int, *, total_steps: int, base_lr: float, warmup_steps: int) -> float:
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    return base_lr * max(0.0, 1.0 - (step - warmup_steps) / span)


#: ``TrainConfig.schedule`` -> the learning rate at a step
SCHEDULES = {"cosine": warmup_cosine, "linear": warmup_linear}
