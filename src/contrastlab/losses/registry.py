"""The loss registry: name -> module class, its functional form, input kind and paper.

Example::

    >>> from contrastlab.losses import create_loss, list_losses
    >>> "nt_xent" in list_losses()
    True
    >>> create_loss("nt_xent", temperature=0.2)
    NTXent(temperature=0.2, decoupled=False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

__all__ = ["LossSpec", "LOSSES", "register", "create_loss", "list_losses", "INPUT_KINDS"]

#: What each input kind's forward takes.
INPUT_KINDS = {
    "pairs": "(z_a (B, D), z_b (B, D))",
    "views_labels": "(views (B, V, D), labels (B,) or None)",
    "embeddings_labels": "(embeddings (B, D), labels (B,))",
    "pairs_flags": "(z_a (B, D), z_b (B, D), is_positive (B,) bool)",
}


@dataclass(frozen=True)
class LossSpec:
    name: str
    module: type[nn.Module]
    function: Callable
    inputs: str
    paper: str


LOSSES: dict[str, LossSpec] = {}


def register(name: str, *, inputs: str, paper: str, function: Callable):
    """Class decorator adding a loss module to :data:`LOSSES` under ``name``."""
    if inputs not in INPUT_KINDS:
        raise ValueError(f"`inputs` must be one of {sorted(INPUT_KINDS)}, got {inputs!r}")

    def add(cls):
        if name in LOSSES:
            raise ValueError(f"a loss named {name!r} is already registered ({LOSSES[name].module.__name__})")
        LOSSES[name] = LossSpec(name, cls, function, inputs, paper)
        cls.registry_name = name
        return cls

    return add


def list_losses() -> list[str]:
    return sorted(LOSSES)


def create_loss(name: str, **hyperparameters) -> nn.Module:
    """Build a registered loss module by name with keyword hyperparameters."""
    if name not in LOSSES:
        raise ValueError(f"`name` must be one of {list_losses()}, got {name!r}")
    return LOSSES[name].module(**hyperparameters)
