"""Alignment and uniformity of an embedding (Wang & Isola 2020, "Understanding Contrastive
Representation Learning through Alignment and Uniformity on the Hypersphere")."""

from __future__ import annotations

import math

import torch

from . import validation as check
from .lse import tiled_lse

__all__ = ["alignment", "uniformity"]


def alignment(z_a: torch.Tensor, z_b: torch.Tensor, *, alpha: float = 2.0) -> torch.Tensor:
    """Mean ``|f(x) - f(y)|^alpha`` over positive pairs of unit vectors: 0 when every pair coincides,
    lower is better.

    Example::

        >>> import torch
        >>> from contrastlab.losses import alignment
        >>> z = torch.randn(8, 16)
        >>> float(alignment(z, z))
        0.0

    Shape:
        z_a, z_b: (B, D) (normalised inside). Output: scalar.
    """
    check.pair("z_a", z_a, "z_b", z_b)
    a = check.positive_number("alpha", alpha)
    dt = check.compute_dtype(z_a, z_b)
    d2 = ((check.normalize(z_a, dt) - check.normalize(z_b, dt)) ** 2).sum(1)  # (B,)
    d = torch.where(d2 > 0, d2.clamp(min=1e-30), torch.zeros_like(d2))
    return (d ** (a / 2)).mean().to(z_a.dtype)


def uniformity(z: torch.Tensor, *, t: float = 2.0) -> torch.Tensor:
    """``log mean_{i != j} exp(-t |z_i - z_j|^2)`` over unit vectors: lower is more uniform; the
    minimum for points spread evenly on the sphere approaches ``-2t`` in high dimension.

    Computed with the tiled log-sum-exp (exact, linear memory), so it can score a whole dataset.

    Example::

        >>> import torch
        >>> from contrastlab.losses import uniformity
        >>> e = torch.eye(4)                    # orthonormal: every squared distance is 2
        >>> round(float(uniformity(e, t=2.0)), 4)
        -4.0

    Shape:
        z: (N, D) with N >= 2 (normalised inside). Output: scalar.
    """
    check.embeddings("z", z, 2, shape_hint="(N, D)")
    tt = check.positive_number("t", t)
    n = z.shape[0]
    if n < 2:
        raise ValueError("`uniformity` needs at least 2 embeddings, got N=1")
    dt = check.compute_dtype(z)
    u = check.normalize(z, dt)                                                 # (N, D)
    sq = (u * u).sum(1, keepdim=True)                                          # (N, 1): 1, or 0 for a zero row
    one = torch.ones_like(sq)
    # -t |u_i - u_j|^2 = <[2t u_i, -t |u_i|^2, 1], [u_j, 1, -t |u_j|^2]>: exact, zero rows included
    x = torch.cat([2 * tt * u, -tt * sq, one], 1)
    y = torch.cat([u, one, -tt * sq], 1)
    lse = tiled_lse(x, y, scale=1.0, exclude_diag=True)                        # (N,)
    return (torch.logsumexp(lse, 0) - math.log(n * (n - 1))).to(z.dtype)
