"""Batched resizing of uint8 image tensors: square training images and dashboard thumbnails.

Example::

    >>> import torch
    >>> from contrastlab.data import thumbnails
    >>> thumbnails(torch.zeros(5, 3, 32, 32, dtype=torch.uint8), size=16).shape
    torch.Size([5, 16, 16, 3])
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

__all__ = ["center_crop_square", "fit_square", "thumbnails"]

_CHUNK = 2048                 # images per interpolation call, at most
_CHUNK_BYTES = 256 * 2 ** 20  # and at most this much float32 working copy (input or output) per call


def _check(x, name: str = "x") -> None:
    if not torch.is_tensor(x) or x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] not in (1, 3):
        what = (f"{type(x).__name__}" if not torch.is_tensor(x)
                else f"dtype {x.dtype} and shape {tuple(x.shape)}")
        raise ValueError(f"`{name}` must be a uint8 tensor of shape (N, C, H, W) with C in {{1, 3}}, got {what}")


def _size(value, name: str = "size") -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    return int(value)


def center_crop_square(x: torch.Tensor) -> torch.Tensor:
    """The central min(H, W) x min(H, W) square of (..., H, W)."""
    h, w = x.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return x[..., top:top + s, left:left + s]


def _resample(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """(N, C, s, s) uint8 -> (N, C, size, size) uint8, in chunks."""
    if x.shape[-1] == size:
        return x.contiguous()
    out = torch.empty(x.shape[0], x.shape[1], size, size, dtype=torch.uint8)
    chunk = max(1, min(_CHUNK, _CHUNK_BYTES // (4 * x.shape[1] * max(x.shape[-1], size) ** 2)))
    for i in range(0, x.shape[0], chunk):
        part = x[i:i + chunk].float()                                           # (b, C, s, s)
        if mode == "nearest":
            r = F.interpolate(part, size=(size, size), mode="nearest-exact")
        elif mode == "area":
            r = F.interpolate(part, size=(size, size), mode="area")
        else:
            r = F.interpolate(part, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[i:i + chunk] = r.round_().clamp_(0, 255).to(torch.uint8)
    return out


def fit_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` (bilinear, antialiased) and centre-crop to a square.

    Shape:
        x: (N, C, H, W) uint8. Output: (N, C, size, size) uint8.
    """
    _check(x)
    size = _size(size)
    return _resample(center_crop_square(x), size, "bilinear")


def thumbnails(x_uint8: torch.Tensor, *, size: int = 28) -> torch.Tensor:
    """Channel-last square thumbnails for embedding snapshots: area averaging when shrinking,
    nearest neighbour when enlarging; non-square images are centre-cropped first.

    Shape:
        x_uint8: (N, C, H, W) uint8. Output: (N, size, size, C) uint8.
    """
    _check(x_uint8, "x_uint8")
    size = _size(size)
    sq = center_crop_square(x_uint8)                                            # (N, C, s, s)
    mode = "area" if sq.shape[-1] > size else "nearest"
    return _resample(sq, size, mode).permute(0, 2, 3, 1).contiguous()           # (N, size, size, C)
