"""Optimizer parameter groups that keep temperatures, biases and norm weights out of weight decay.

Example::

    >>> import torch
    >>> from contrastlab.losses import CLIPLoss
    >>> from contrastlab.optim import param_groups
    >>> model = torch.nn.ModuleDict({"proj": torch.nn.Linear(8, 4), "loss": CLIPLoss()})
    >>> [len(g["params"]) for g in param_groups(model, weight_decay=0.1)]
    [1, 2]
"""

from __future__ import annotations

from torch import nn


def _no_decay_names(model: nn.Module) -> set[str]:
    names = set()
    for prefix, module in model.named_modules():
        if hasattr(module, "no_weight_decay"):
            names |= {f"{prefix}.{n}" if prefix else n for n in module.no_weight_decay()}
    return names


def param_groups(model: nn.Module, *, weight_decay: float) -> list[dict]:
    """Two groups: decayed weights, and everything 1-d (biases, norms) or listed by a submodule's
    ``no_weight_decay()`` (timm's convention; e.g. a learnable temperature) at weight decay 0."""
    if weight_decay < 0:
        raise ValueError(f"`weight_decay` must be >= 0, got {weight_decay!r}")
    skip = _no_decay_names(model)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name in skip or getattr(p, "_no_weight_decay", False) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
