"""Optimizer parameter groups that keep temperatures, biases and norm weights out of weight decay, and give chosen
submodules (a pretrained backbone) a scaled learning rate.

Every group carries ``lr_scale`` (its learning rate is the schedule's times that; the trainer sets
``group["lr"] = lr * group["lr_scale"]`` each step) and ``kind`` ("decay" or "no_decay"). Parameters with
``requires_grad=False`` (a frozen encoder, a momentum copy) are in no group.

Example::

    >>> import torch
    >>> from contrastlab.losses import CLIPLoss
    >>> from contrastlab.optim import param_groups
    >>> model = torch.nn.ModuleDict({"proj": torch.nn.Linear(8, 4), "loss": CLIPLoss()})
    >>> [len(g["params"]) for g in param_groups(model, weight_decay=0.1)]
    [1, 2]
    >>> [(g["lr_scale"], g["kind"], len(g["params"])) for g in param_groups(model, weight_decay=0.1,
    ...                                                                     lr_scales={"proj": 0.1})]
    [(1.0, 'decay', 0), (1.0, 'no_decay', 1), (0.1, 'decay', 1), (0.1, 'no_decay', 1)]
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

from torch import nn

__all__ = ["param_groups"]


def _no_decay_names(model: nn.Module) -> set[str]:
    names = set()
    for prefix, module in model.named_modules():
        if hasattr(module, "no_weight_decay"):
            names |= {f"{prefix}.{n}" if prefix else n for n in module.no_weight_decay()}
    return names


def _check_scales(model: nn.Module, lr_scales) -> dict[str, float]:
    if not isinstance(lr_scales, Mapping):
        raise TypeError(f"`lr_scales` must map submodule names to learning-rate multipliers, got "
                        f"{type(lr_scales).__name__}")
    modules = dict(model.named_modules())
    out = {}
    for name, scale in lr_scales.items():
        if not isinstance(name, str) or not name or name not in modules:
            raise ValueError(f"`lr_scales` keys must name submodules of the model, got {name!r}")
        if (isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale)
                or scale <= 0):
            raise ValueError(f"`lr_scales[{name!r}]` must be a finite number > 0, got {scale!r}")
        out[name] = float(scale)
    return out


def param_groups(model: nn.Module, *, weight_decay: float, lr_scales: Mapping[str, float] | None = None) -> list[dict]:
    """Two groups: decayed weights, and everything 1-d (biases, norms) or listed by a submodule's
    ``no_weight_decay()`` (timm's convention; e.g. a learnable temperature) at weight decay 0; both at
    ``lr_scale`` 1. ``lr_scales`` ({submodule name: multiplier}, e.g. {"encoder": 0.1}): the trainable parameters
    under each named submodule with a multiplier other than 1 form two more groups (decay, no_decay) at that
    ``lr_scale``, after the first two (the innermost name wins)."""
    if weight_decay < 0:
        raise ValueError(f"`weight_decay` must be >= 0, got {weight_decay!r}")
    scales = _check_scales(model, lr_scales or {})
    skip = _no_decay_names(model)
    by_scale: dict[float, tuple[list, list]] = {1.0: ([], [])}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        under = [m for m in scales if name.startswith(m + ".")]
        scale = scales[max(under, key=len)] if under else 1.0
        decay, no_decay = by_scale.setdefault(scale, ([], []))
        (no_decay if p.ndim <= 1 or name in skip or getattr(p, "_no_weight_decay", False) else decay).append(p)
    groups = []
    for scale, (decay, no_decay) in by_scale.items():     # a scale with no trainable parameter has no groups
        groups += [{"params": decay, "weight_decay": weight_decay, "lr_scale": scale, "kind": "decay"},
                   {"params": no_decay, "weight_decay": 0.0, "lr_scale": scale, "kind": "no_decay"}]
    return groups
