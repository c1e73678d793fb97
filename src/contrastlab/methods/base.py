"""One interface for every training method: a batch (a dict of tensors) in, a loss and its metrics out.

The trainer only calls `make_batch`, `forward`, `after_step` and `embed` (and, for gradient caching with
`micro_batch`, `split`, `embeddings` and `loss_from`); it never branches on a method's name.
Hyperparameters are the keyword-only arguments of each method's constructor; `contrastlab train --set key=value`
is checked against them (see `method_hyperparameters`).
"""
from __future__ import annotations

import inspect
import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..views import make_series_views, make_views

__all__ = ["Method", "StepOutput", "split_batch", "METHODS", "register_method", "create_method", "list_methods",
           "method_hyperparameters", "positive_number", "warn_single_class"]

METHODS: dict[str, type["Method"]] = {}

#: data modality -> the function that makes a batch's views, ``views(x, augment, n_views=, generator=)``:
#: (B, C, H, W) images -> (B, V, C, H, W); (B, C, T) series -> (B, V, C, T).
VIEWS: dict[str, Callable] = {"image": make_views, "sequence": make_series_views}


def register_method(name: str):
    def deco(cls):
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered")
        cls.name = name
        METHODS[name] = cls
        return cls
    return deco


def list_methods() -> list[str]:
    return sorted(METHODS)


def method_hyperparameters(name: str) -> dict[str, object]:
    """The method's settable hyperparameters and their defaults (keyword-only constructor arguments)."""
    cls = METHODS[name]
    params = inspect.signature(cls.__init__).parameters
    return {k: p.default for k, p in params.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and k not in Method.CONTEXT}


def positive_number(name: str, value) -> float:
    """`value` as a float, when it is a finite number > 0 (a temperature); a ValueError naming `name` otherwise.

    >>> positive_number("temperature", 0.5)
    0.5
    >>> positive_number("temperature", float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: `temperature` must be a finite number > 0, got nan
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a number > 0, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number > 0, got {float(value)!r}")
    if value <= 0:
        raise ValueError(f"`{name}` must be > 0, got {value!r}")
    return float(value)


def warn_single_class(method: str, ids, what: str = "labels") -> None:
    """Warn when the training `ids` (labels, groups) hold one value: every other sample is then a positive and
    a SupCon-style loss has no negatives to push away."""
    if ids is not None and len(ids) and int(torch.unique(ids).numel()) < 2:
        warnings.warn(f"method {method!r}: the training {what} hold a single class ({int(ids[0])}), so every other "
                      f"sample of a batch is a positive and there are no negatives; the loss cannot separate "
                      f"anything. Use data with at least 2 classes, or an unsupervised method (simclr, moco)",
                      stacklevel=3)


def create_method(name: str, encoder: nn.Module, **kwargs) -> "Method":
    if name not in METHODS:
        raise ValueError(f"`method` must be one of {list_methods()}, got {name!r}")
    return METHODS[name](encoder, **kwargs)


@dataclass
class StepOutput:
    loss: torch.Tensor                                     # scalar, differentiable
    metrics: dict[str, float] = field(default_factory=dict)  # extra scalars to log (detached)


def split_batch(batch, size: int) -> list:
    """Split a tensor, a tuple/list of tensors or a dict (tensors split, other values shared) into chunks of at
    most ``size`` rows along axis 0.

    >>> [c["x"].shape[0] for c in split_batch({"x": torch.zeros(5, 2), "name": "b"}, 2)]
    [2, 2, 1]
    """
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"`size` must be a positive int (rows per chunk), got {size!r}")
    if torch.is_tensor(batch):
        return list(batch.split(size))
    items = batch.items() if isinstance(batch, dict) else enumerate(batch)
    rows = {k: v.shape[0] for k, v in items if torch.is_tensor(v)}
    if not rows:
        raise ValueError("`batch` must hold at least one tensor to split")
    if len(set(rows.values())) != 1:
        raise ValueError(f"`batch` tensors must share their first axis (the batch), got sizes {rows}")
    n = next(iter(rows.values()))
    chunks = []
    for lo in range(0, n, size):
        cut = lambda v: v[lo:lo + size] if torch.is_tensor(v) else v   # noqa: E731
        chunks.append({k: cut(v) for k, v in batch.items()} if isinstance(batch, dict)
                      else type(batch)(cut(v) for v in batch))
    return chunks


class Method(nn.Module):
    """Base class. Subclasses set `n_views`, `needs_labels` / `needs_groups` and implement `forward`.

    Constructor context every method receives (not hyperparameters): `feature_dim` (the encoder's output size)
    and `num_classes` (None for unlabelled data).
    """

    CONTEXT = ("feature_dim", "num_classes")
    name = "?"
    modalities: tuple = ("image",)     # the kinds of data it trains on (`data.modality`)
    n_views: int = 2
    needs_labels: bool = False
    needs_groups: bool = False
    #: settings of the encoder this method wants when the task builds it (only those the encoder takes, and only
    #: where the user's ``encoder_options`` do not set them), e.g. ``{"causal": True}``
    encoder_defaults: dict = {}

    def __init__(self, encoder: nn.Module, *, feature_dim: int, num_classes: int | None = None):
        super().__init__()
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"`encoder` must be an nn.Module, got {type(encoder).__name__}")
        self.encoder = encoder
        self.feature_dim = feature_dim
        self.num_classes = num_classes

    # -- the interface the trainer uses -------------------------------------------------------------------
    def make_batch(self, data, idx: torch.Tensor, augment: Callable, generator: torch.Generator) -> dict:
        """Views of `data.x[idx]` plus whatever labels the data has, made by the views of the data's modality
        (:data:`VIEWS`). Shape: views (B, V, C, H, W) for images, (B, V, C, T) for series."""
        views = VIEWS[getattr(data, "modality", "image")]
        batch = {"views": views(data.x[idx], augment, n_views=self.n_views, generator=generator), "index": idx}
        if data.y is not None:
            batch["labels"] = data.y[idx]
        if data.group is not None:
            batch["group"] = data.group[idx]
        return batch

    def forward(self, batch: dict) -> StepOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- the split form, for gradient caching (`micro_batch`): forward(batch) == loss_from(embeddings(batch), batch)
    def embeddings(self, batch: dict) -> tuple[torch.Tensor, ...]:
        """The batch's embeddings, row-aligned with :meth:`split`'s chunks (a tuple of (B_i, ...) tensors).
        Methods whose loss cannot be computed from per-chunk embeddings alone leave this unimplemented."""
        raise NotImplementedError(f"method {self.name!r} cannot split its embeddings from its loss, so it does not "
                                  f"support `micro_batch` (gradient caching); methods that do: "
                                  f"{sorted(n for n, c in METHODS.items() if c.supports_micro_batch())}")

    def loss_from(self, embeddings: tuple, batch: dict) -> StepOutput:
        """The loss of the whole batch from its embeddings (as returned by :meth:`embeddings`)."""
        raise NotImplementedError(f"method {self.name!r} does not support `micro_batch` (no `loss_from`)")

    def split(self, batch: dict, size: int) -> list[dict]:
        """Chunks of at most `size` examples whose :meth:`embeddings`, concatenated, are the batch's."""
        return split_batch(batch, size)

    @classmethod
    def supports_micro_batch(cls) -> bool:
        return cls.embeddings is not Method.embeddings and cls.loss_from is not Method.loss_from

    def after_step(self, *, step: int, total_steps: int) -> None:
        """Called after each optimizer step (momentum updates, queue bookkeeping)."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Features used for evaluation: the encoder's output h, not the projection g(h). (B, C, H, W) -> (B, F)."""
        return self.encoder(x)

    def evaluated_encoder(self) -> nn.Module:
        """The encoder whose features :meth:`embed` returns: its weights start label-efficiency fine-tuning."""
        return self.encoder

    def check_data(self, data) -> None:
        """Raise a clear error when the data lacks what this method needs."""
        got = getattr(data, "modality", "image")
        if got not in self.modalities:
            fits = sorted(n for n, cls in METHODS.items() if got in cls.modalities)
            raise ValueError(f"method {self.name!r} trains on {' or '.join(self.modalities)} data, but {data.name} is "
                             f"{got} data; "
                             f"methods for {got} data: {fits}")
        if self.needs_labels and data.y is None:
            raise ValueError(f"method {self.name!r} needs labels, but {data.name} has none; "
                             f"use an unsupervised method (simclr, moco) or give `y` in the data")
        if self.needs_groups and data.group is None:
            raise ValueError(f"method {self.name!r} needs a `group` array in the data (images of one group are "
                             f"positives of each other); {data.name} has none")

    def encode_views(self, views: torch.Tensor, net: Callable) -> torch.Tensor:
        """Run `net` on all views at once. (B, V, C, H, W) -> (B, V, D)."""
        b, v = views.shape[:2]
        return net(views.flatten(0, 1)).unflatten(0, (b, v))
