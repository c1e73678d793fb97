"""Input checks shared by every loss: each error names the argument, the rule and the value it got."""

from __future__ import annotations

import functools
import math
import numbers

import torch

_LOW_PRECISION = (torch.float16, torch.bfloat16)
REDUCTIONS = ("mean", "sum", "none")


class NonFiniteError(ValueError):
    """Embeddings (or logits) hold NaN or Inf: in training, the sign that the run diverged."""


def embeddings(name: str, value, ndim: int, *, shape_hint: str) -> torch.Tensor:
    """A finite floating-point tensor with ``ndim`` dimensions and no empty axis."""
    if not torch.is_tensor(value):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape {shape_hint}, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point tensor, got dtype {value.dtype}; "
                        f"convert it with `.float()`")
    if value.dim() != ndim:
        extra = " (did you pass (B, D) where (B, V, D) is expected? add a view axis)" if ndim == 3 and value.dim() == 2 else ""
        raise ValueError(f"`{name}` must have shape {shape_hint}, got a {value.dim()}-d tensor of shape "
                         f"{tuple(value.shape)}{extra}")
    if any(s == 0 for s in value.shape):
        raise ValueError(f"`{name}` must not be empty, got shape {tuple(value.shape)}")
    if not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise NonFiniteError(f"`{name}` must be finite, got {bad} NaN or Inf value(s) in shape {tuple(value.shape)}")
    return value


def same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"`{name_a}` and `{name_b}` must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def pair(name_a: str, a, name_b: str, b) -> None:
    """Two (B, D) embedding tensors of the same shape."""
    embeddings(name_a, a, 2, shape_hint="(B, D)")
    embeddings(name_b, b, 2, shape_hint="(B, D)")
    same_shape(name_a, a, name_b, b)


def same_dim(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"`{name_a}` and `{name_b}` must have the same feature size D, got "
                         f"{a.shape[-1]} and {b.shape[-1]}")


def labels(value, batch: int, *, name: str = "labels") -> torch.Tensor:
    """A 1-d integer (or bool) tensor of length ``batch``."""
    if not torch.is_tensor(value):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape (B,) = ({batch},), got {type(value).__name__}")
    if value.is_floating_point() or value.is_complex():
        raise TypeError(f"`{name}` must be an integer tensor, got dtype {value.dtype}")
    if value.dim() != 1 or value.shape[0] != batch:
        raise ValueError(f"`{name}` must have shape (B,) = ({batch},), got {tuple(value.shape)}")
    return value.long()


def positive_number(name: str, value, *, allow_zero: bool = False, allow_tensor: bool = False):
    """A finite number > 0 (or >= 0); optionally a 0-d tensor (learnable), checked when not traced."""
    if torch.is_tensor(value):
        if not allow_tensor:
            raise TypeError(f"`{name}` must be a float, got a tensor; pass `float({name})`")
        if value.numel() != 1:
            raise ValueError(f"`{name}` must be a scalar, got a tensor of shape {tuple(value.shape)}")
        v = float(value.detach())
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        v = float(value)
    else:
        raise TypeError(f"`{name}` must be a real number, got {type(value).__name__} {value!r}")
    ok = math.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        raise ValueError(f"`{name}` must be a finite number {'>= 0' if allow_zero else '> 0'}, got {v!r}")
    return value if torch.is_tensor(value) else v


def real_number(name: str, value, *, allow_tensor: bool = False):
    if torch.is_tensor(value) and allow_tensor:
        if value.numel() != 1 or not bool(torch.isfinite(value).all()):
            raise ValueError(f"`{name}` must be a finite scalar, got {value!r}")
        return value
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(float(value)):
        raise ValueError(f"`{name}` must be a finite real number, got {value!r}")
    return float(value)


def choice(name: str, value, options) -> str:
    if value not in options:
        raise ValueError(f"`{name}` must be one of {sorted(options)}, got {value!r}")
    return value


def at_least(name: str, value: int, minimum: int, what: str) -> None:
    if value < minimum:
        raise ValueError(f"{what} needs at least {minimum} {name}, got {value}")


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float16 and bfloat16 are computed in float32 (logits / temperature overflow fp16); others kept."""
    dt = functools.reduce(torch.promote_types, (t.dtype for t in tensors))
    return torch.float32 if dt in _LOW_PRECISION else dt


def normalize(z: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """L2-normalise the last axis in ``dtype``; zero vectors stay zero (no NaN)."""
    return torch.nn.functional.normalize(z.to(dtype), dim=-1, eps=1e-12)
