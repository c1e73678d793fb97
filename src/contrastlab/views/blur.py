"""Gaussian blur with one sigma per sample: a separable grouped convolution over the whole batch.

SimCLR blurs with probability 0.5, sigma uniform in [0.1, 2.0] and a kernel 10% of the image side
(Chen et al. 2020, appendix A): radius ``(side // 10) // 2``, so 3 taps at 28-32 px, 23 at 224 px.
Borders are reflected without repeating the edge pixel (``cb|abcd|cb``), so a constant image stays
constant up to rounding.

Example::

    >>> import torch
    >>> from contrastlab.views import gaussian_blur
    >>> x = torch.zeros(2, 1, 5, 5)
    >>> x[:, :, 2, 2] = 1.0                                            # two impulses
    >>> y = gaussian_blur(x, torch.tensor([0.5, 2.0]), kernel_size=3)
    >>> [round(v, 4) for v in y[:, 0, 2, 2].tolist()]                   # a wider sigma spreads more
    [0.6193, 0.1308]
    >>> [round(v, 4) for v in y.sum(dim=(1, 2, 3)).tolist()]
    [1.0, 1.0]
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

from . import validation as check

__all__ = ["blur_kernel_size", "gaussian_kernels", "gaussian_blur"]


def blur_kernel_size(height: int, width: int) -> int:
    """SimCLR's odd kernel size for an image: ``2 * ((min(height, width) // 10) // 2) + 1``.

    Example::

        >>> [blur_kernel_size(s, s) for s in (8, 28, 32, 96, 224)]
        [1, 3, 3, 9, 23]
    """
    return 2 * ((min(height, width) // 10) // 2) + 1


def gaussian_kernels(sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Normalised 1-d Gaussian taps, one row per sample. Shape: sigma (B,) -> (B, kernel_size).

    Example::

        >>> import torch
        >>> [round(v, 4) for v in gaussian_kernels(torch.tensor([1.0]), 3)[0].tolist()]
        [0.2741, 0.4519, 0.2741]
    """
    r = kernel_size // 2
    j = torch.arange(-r, r + 1, dtype=sigma.dtype, device=sigma.device)            # (K,)
    k = torch.exp(-(j * j) / (2.0 * sigma.unsqueeze(1) ** 2))                      # (B, K)
    return k / k.sum(dim=1, keepdim=True)


def _separable(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Convolve each sample's rows then columns with its own taps. x (B, C, H, W), taps (B, K)."""
    b, c, h, w = x.shape
    k = taps.shape[1]
    r = k // 2
    weight = taps.to(x.dtype).repeat_interleave(c, dim=0)                          # (B*C, K)
    padded = F.pad(x, (r, r, r, r), mode="reflect").view(1, b * c, h + 2 * r, w + 2 * r)
    y = F.conv2d(padded, weight.view(b * c, 1, 1, k), groups=b * c)                 # (1, B*C, H + 2r, W)
    y = F.conv2d(y, weight.view(b * c, 1, k, 1), groups=b * c)                      # (1, B*C, H, W)
    return y.view(b, c, h, w)


def gaussian_blur(x: torch.Tensor, sigma, *, kernel_size: int | None = None) -> torch.Tensor:
    """Blur each sample with its own Gaussian ``sigma`` (a number or a (B,) tensor, > 0).

    ``kernel_size`` (odd, its radius below the image side) defaults to :func:`blur_kernel_size`.

    Shape: (B, C, H, W) float -> (B, C, H, W).

    Example::

        >>> import torch
        >>> x = torch.rand(4, 3, 32, 32)
        >>> gaussian_blur(x, torch.tensor([0.1, 0.5, 1.0, 2.0])).shape     # 3-tap kernel at 32 px
        torch.Size([4, 3, 32, 32])
    """
    check.images(x)
    if not x.is_floating_point():
        raise TypeError(f"`x` must be floating point in [0, 1], got dtype {x.dtype}; use `to_float(x)`")
    b, _, h, w = x.shape
    s = check.factors("sigma", sigma, b, x).view(b)
    if not bool(((s > 0) & torch.isfinite(s)).all()):
        raise ValueError(f"`sigma` must be finite and > 0, got {s.tolist() if b <= 8 else 'some values <= 0'}")
    if kernel_size is None:
        kernel_size = blur_kernel_size(h, w)
    ok = isinstance(kernel_size, numbers.Integral) and not isinstance(kernel_size, bool)
    if not ok or kernel_size < 1 or kernel_size % 2 == 0 or kernel_size // 2 >= min(h, w):
        raise ValueError(f"`kernel_size` must be an odd positive int with radius < min(H, W) = {min(h, w)}, "
                         f"got {kernel_size!r}")
    if kernel_size == 1:
        return x.clone()
    return _separable(x, gaussian_kernels(s, kernel_size))
