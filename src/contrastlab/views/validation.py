"""Hyperparameter and input checks for the view makers: each error names the argument, the rule and the value.

Example::

    >>> from contrastlab.views.validation import probability
    >>> probability("flip_p", 0.5)
    0.5
    >>> probability("flip_p", 1.5)
    Traceback (most recent call last):
    ...
    ValueError: `flip_p` must be a probability in [0, 1], got 1.5
"""

from __future__ import annotations

import math
import numbers

import torch


def real(name: str, value) -> float:
    """A finite real number (bools and tensors refused)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"`{name}` must be finite, got {v!r}")
    return v


def probability(name: str, value) -> float:
    v = real(name, value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"`{name}` must be a probability in [0, 1], got {v!r}")
    return v


def in_range(name: str, value, low: float, high: float) -> float:
    v = real(name, value)
    if not low <= v <= high:
        raise ValueError(f"`{name}` must be in [{low:g}, {high:g}], got {v!r}")
    return v


def non_negative(name: str, value) -> float:
    v = real(name, value)
    if v < 0:
        raise ValueError(f"`{name}` must be >= 0, got {v!r}")
    return v


def interval(name: str, value, *, low: float = 0.0, high: float = math.inf) -> tuple[float, float]:
    """A pair ``(a, b)`` with ``low < a <= b <= high``."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(f"`{name}` must be a pair (low, high), got {value!r}")
    a, b = (real(name, v) for v in value)
    top = "" if math.isinf(high) else f" <= {high:g}"
    if not low < a <= b <= high:
        raise ValueError(f"`{name}` must be a pair (low, high) with {low:g} < low <= high{top}, got {(a, b)!r}")
    return a, b


def positive_int(name: str, value) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    return int(value)


def size(value) -> tuple[int, int] | None:
    """``None``, a positive int (square) or a pair of positive ints ``(height, width)``."""
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1:
        return int(value), int(value)
    ok = (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in value))
    if not ok:
        raise ValueError(f"`size` must be None, a positive int or a pair of positive ints (height, width), "
                         f"got {value!r}")
    return int(value[0]), int(value[1])


def images(x, name: str = "x") -> torch.Tensor:
    """A (B, C, H, W) batch with C in {1, 3}: uint8, or floating point with values in [0, 1]."""
    if not torch.is_tensor(x):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        hint = " (a single image? add a batch axis with `x[None]`)" if x.dim() == 3 else ""
        raise ValueError(f"`{name}` must have shape (B, C, H, W), got a {x.dim()}-d tensor of shape "
                         f"{tuple(x.shape)}{hint}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"`{name}` must have C in {{1, 3}} channels (shape (B, C, H, W)), got C={x.shape[1]} "
                         f"in shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"`{name}` must not be empty, got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise TypeError(f"`{name}` must be uint8 or floating point, got dtype {x.dtype}")
    if x.is_floating_point():
        lo, hi = torch.aminmax(x)
        if not (float(lo) >= 0.0 and float(hi) <= 1.0):    # also refuses NaN
            raise ValueError(f"`{name}` must hold values in [0, 1] when floating point, got values in "
                             f"[{float(lo):g}, {float(hi):g}]; divide uint8-range data by 255")
    return x


def factors(name: str, value, batch: int, like: torch.Tensor) -> torch.Tensor:
    """A per-sample factor: a real number or a (B,) tensor; returned as (B, 1, 1, 1) in ``like``'s dtype."""
    if torch.is_tensor(value):
        if value.dim() != 1 or value.shape[0] != batch:
            raise ValueError(f"`{name}` must be a number or a tensor of shape (B,) = ({batch},), got shape "
                             f"{tuple(value.shape)}")
        return value.to(device=like.device, dtype=like.dtype).view(batch, 1, 1, 1)
    return torch.full((batch, 1, 1, 1), real(name, value), device=like.device, dtype=like.dtype)
