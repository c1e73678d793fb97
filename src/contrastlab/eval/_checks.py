"""Input checks shared by ``contrastlab.eval``: each error names the argument, the rule and the value."""

from __future__ import annotations

import numbers

import torch
from torch import nn

from ..losses import validation as check


def features(name: str, value, *, rows: str = "N") -> torch.Tensor:
    """A finite, non-empty floating-point (rows, F) tensor."""
    return check.embeddings(name, value, 2, shape_hint=f"({rows}, F)")


def same_width(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"`{name_a}` and `{name_b}` must have the same feature size F, got "
                         f"{a.shape[1]} and {b.shape[1]}")


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be a positive int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value}")
    return int(value)


def seed(value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"`seed` must be an int >= 0, got {value!r}")
    return int(value)


def optional_num_classes(value) -> int | None:
    return None if value is None else positive_int("num_classes", value)


def class_labels(name: str, value, n: int, *, rows_of: str, num_classes: int | None = None) -> torch.Tensor:
    """A (n,) integer tensor of class ids in [0, num_classes); returned as int64 (a new tensor or a view)."""
    if not torch.is_tensor(value):
        raise TypeError(f"`{name}` must be a torch.Tensor of integer class ids with shape ({n},), "
                        f"got {type(value).__name__}")
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"`{name}` must be an integer tensor of class ids, got dtype {value.dtype}")
    if tuple(value.shape) != (n,):
        raise ValueError(f"`{name}` must have shape ({n},), one label per row of `{rows_of}`, "
                         f"got {tuple(value.shape)}")
    lo, hi = int(value.min()), int(value.max())
    if lo < 0:
        raise ValueError(f"`{name}` must hold class ids >= 0, got {lo}")
    if num_classes is not None and hi >= num_classes:
        raise ValueError(f"`{name}` must hold class ids < num_classes = {num_classes}, got {hi}")
    return value.long()


def uint8_images(name: str, value) -> torch.Tensor:
    """A non-empty uint8 (N, C, H, W) tensor, or a source of such images on disk (`contrastlab.data.stream`)."""
    from ..data.stream import is_source
    if is_source(value):
        return value
    if not torch.is_tensor(value):
        raise TypeError(f"`{name}` must be a uint8 torch.Tensor of images (N, C, H, W), got {type(value).__name__}")
    if value.dtype != torch.uint8:
        raise TypeError(f"`{name}` must be a uint8 tensor of images (N, C, H, W), got dtype {value.dtype}; "
                        f"convert floats in [0, 1] with `(x * 255).round().to(torch.uint8)`")
    if value.dim() != 4:
        raise ValueError(f"`{name}` must have shape (N, C, H, W), got a {value.dim()}-d tensor of shape "
                         f"{tuple(value.shape)}")
    if value.numel() == 0:
        raise ValueError(f"`{name}` must not be empty, got shape {tuple(value.shape)}")
    return value


def float_images(name: str, value) -> torch.Tensor:
    """A non-empty floating-point (B, C, H, W) tensor."""
    if not torch.is_tensor(value) or not value.is_floating_point():
        what = f"dtype {value.dtype}" if torch.is_tensor(value) else type(value).__name__
        raise TypeError(f"`{name}` must be a floating-point tensor of images (B, C, H, W) in [0, 1], got {what}")
    if value.dim() != 4 or value.numel() == 0:
        raise ValueError(f"`{name}` must have a non-empty shape (B, C, H, W), got {tuple(value.shape)}")
    return value


def module(name: str, value) -> nn.Module:
    if not isinstance(value, nn.Module):
        raise TypeError(f"`{name}` must be a torch.nn.Module, got {type(value).__name__}")
    return value


def out_dim(name: str, encoder: nn.Module) -> int:
    dim = getattr(encoder, "out_dim", None)
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1:
        raise ValueError(f"`{name}` must have a positive int attribute `out_dim` (its feature size F), "
                         f"got {dim!r}")
    return int(dim)


def same_rows(name_a: str, n_a: int, name_b: str, n_b: int) -> None:
    if n_a != n_b:
        raise ValueError(f"`{name_a}` and `{name_b}` must have the same number of rows, got {n_a} and {n_b}")


def module_device(m: nn.Module) -> torch.device:
    """Where a module's first parameter (or buffer) lives; CPU for a module with neither."""
    from ..devices import module_device
    return module_device(m)
