"""Image corruptions for robustness evaluation, in the spirit of Hendrycks & Dietterich 2019,
"Benchmarking Neural Network Robustness to Common Corruptions and Perturbations" (ImageNet-C).

Every corruption is ``fn(x, severity, *, generator=None) -> x'`` on float (B, C, H, W) images in
[0, 1]; severity 0 is the identity and larger is harsher. Random ones draw from ``generator`` (a
CPU ``torch.Generator``), so a seeded generator gives the same output on any device. Inputs are
never modified.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import validation as lcheck
from . import _checks as check

__all__ = ["gaussian_noise", "gaussian_blur", "contrast", "gaussian_kernel", "CORRUPTIONS", "DEFAULT_SEVERITIES"]


def gaussian_noise(x: torch.Tensor, severity: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add N(0, severity^2) noise to every pixel, clipped back to [0, 1]; severity is sigma.

    Example::

        >>> import torch
        >>> x = torch.full((1, 1, 2, 2), 0.5)
        >>> y = gaussian_noise(x, 0.1, generator=torch.Generator().manual_seed(0))
        >>> torch.equal(y, gaussian_noise(x, 0.1, generator=torch.Generator().manual_seed(0)))
        True

    Shape:
        x: (B, C, H, W) float in [0, 1]. Output: the same shape, dtype and device.
    """
    check.float_images("x", x)
    sigma = lcheck.positive_number("severity", severity, allow_zero=True)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype,
                        device=generator.device if generator is not None else x.device)
    return (x + sigma * noise.to(x.device)).clamp_(0.0, 1.0)


def gaussian_kernel(sigma: float, *, truncate: float = 3.0, dtype=torch.float32) -> torch.Tensor:
    """The normalised 1-d Gaussian ``exp(-t^2 / (2 sigma^2))`` on ``t = -r..r``, ``r = int(truncate * sigma + 0.5)``.

    Example::

        >>> gaussian_kernel(1.0).shape, round(float(gaussian_kernel(1.0).sum()), 6)
        (torch.Size([7]), 1.0)
    """
    r = int(truncate * sigma + 0.5)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def gaussian_blur(x: torch.Tensor, severity: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Separable Gaussian blur with standard deviation ``severity`` pixels (kernel radius
    ``int(3 * sigma + 0.5)``), edges extended by replicating the border pixel. ``generator`` is
    accepted for the common corruption signature and unused.

    Example::

        >>> import torch
        >>> x = torch.zeros(1, 1, 9, 9); x[0, 0, 4, 4] = 1.0   # a point, far from the edges
        >>> y = gaussian_blur(x, 1.0)
        >>> round(float(y.sum()), 4), bool(y[0, 0, 4, 4] < 1)
        (1.0, True)

    Shape:
        x: (B, C, H, W) float. Output: the same shape, dtype and device.
    """
    check.float_images("x", x)
    sigma = lcheck.positive_number("severity", severity, allow_zero=True)
    if sigma == 0 or int(3.0 * sigma + 0.5) == 0:
        return x.clone()
    b, c, h, w = x.shape
    k = gaussian_kernel(sigma, dtype=x.dtype).to(x.device)                   # (2r+1,)
    r = (len(k) - 1) // 2
    y = x.reshape(b * c, 1, h, w)                                            # (B*C, 1, H, W)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))   # along W
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))   # along H
    return y.reshape(b, c, h, w)


def contrast(x: torch.Tensor, severity: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Blend each image toward its own mean grey level: ``(1 - s) * x + s * mean(x)`` with s =
    severity in [0, 1] (0: unchanged, 1: a flat image), the mean taken over (C, H, W).
    ``generator`` is accepted for the common corruption signature and unused.

    Example::

        >>> import torch
        >>> contrast(torch.tensor([[[[0.0, 1.0]]]]), 0.5)
        tensor([[[[0.2500, 0.7500]]]])

    Shape:
        x: (B, C, H, W) float. Output: the same shape, dtype and device.
    """
    check.float_images("x", x)
    s = lcheck.positive_number("severity", severity, allow_zero=True)
    if s > 1:
        raise ValueError(f"`severity` of `contrast` must be in [0, 1], got {s!r}")
    mean = x.mean(dim=(1, 2, 3), keepdim=True)                               # (B, 1, 1, 1)
    return torch.lerp(x, mean.expand_as(x), s)


#: name -> corruption, the keys of :func:`contrastlab.eval.robustness`'s result
CORRUPTIONS = {"gaussian_noise": gaussian_noise, "blur": gaussian_blur, "contrast": contrast}

#: three severities each, light to harsh, for small (28-32 px) images
DEFAULT_SEVERITIES = {"gaussian_noise": (0.08, 0.18, 0.38), "blur": (0.5, 1.0, 2.0), "contrast": (0.6, 0.8, 0.9)}
