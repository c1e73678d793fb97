"""Contrast over time: TS2Vec's hierarchical contrastive loss (Yue et al. 2022, "TS2Vec: Towards Universal
Representation of Time Series", section 3.3) and the grouped pair loss it is made of.

:func:`grouped_pair_loss` is NT-Xent inside each of G groups of N pairs, on raw dot products (TS2Vec does not
normalise): each of a group's 2N vectors is an anchor whose positive is its pair's other vector and whose
negatives are the group's other 2N - 2. Instance-wise contrast groups by time step (the other series at the same
step are the negatives); temporal contrast groups by series (the same series at other steps are the negatives).
:func:`hierarchical_contrastive_loss` averages both over the scales of repeated max-pooling by 2 along time.

Example::

    >>> import torch
    >>> za, zb = torch.randn(4, 16, 8), torch.randn(4, 16, 8)          # (B, T, D): two views' overlap
    >>> hierarchical_contrastive_loss(za, zb).shape
    torch.Size([])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import validation as check
from .lse import log1p_exp

__all__ = ["grouped_pair_loss", "hierarchical_contrastive_loss"]


def grouped_pair_loss(z_a: torch.Tensor, z_b: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
    """Mean over groups and anchors of ``-log softmax`` of each anchor's positive among its group's other 2N - 1
    vectors, with logits ``z_i . z_j / temperature`` (no normalisation). Needs N >= 2.

    Shape: z_a, z_b: (G, N, D), row (g, n) of each the two halves of pair n of group g. Output: scalar.

    >>> grouped_pair_loss(torch.zeros(3, 5, 2), torch.zeros(3, 5, 2)).item() == float(torch.log(torch.tensor(9.0)))
    True
    """
    check.embeddings("z_a", z_a, 3, shape_hint="(G, N, D)")
    check.embeddings("z_b", z_b, 3, shape_hint="(G, N, D)")
    if z_a.shape != z_b.shape:
        raise ValueError(f"`z_a` and `z_b` must have the same shape (G, N, D), got {tuple(z_a.shape)} and "
                         f"{tuple(z_b.shape)}")
    scale = 1.0 / check.positive_number("temperature", temperature)
    g, n, _ = z_a.shape
    if n < 2:
        raise ValueError(f"`grouped_pair_loss` needs at least 2 pairs per group (in-group negatives), got N={n}")
    dt = check.compute_dtype(z_a, z_b)
    z = torch.cat([z_a, z_b], 1).to(dt)                                        # (G, 2N, D)
    logits = torch.bmm(z, z.transpose(1, 2)) * scale                            # (G, 2N, 2N)
    idx = torch.arange(2 * n, device=z.device)
    partner = (idx + n) % (2 * n)                                               # (2N,)
    pos = logits[:, idx, partner]                                               # (G, 2N)
    drop = torch.zeros(2 * n, 2 * n, dtype=torch.bool, device=z.device)
    drop[idx, idx] = True
    drop[idx, partner] = True
    lse = logits.masked_fill(drop, float("-inf")).logsumexp(2)                  # (G, 2N) negatives only
    return log1p_exp(lse - pos).mean().to(z_a.dtype)


def hierarchical_contrastive_loss(z_a: torch.Tensor, z_b: torch.Tensor, *, alpha: float = 0.5,
                                  temporal_unit: int = 0, temperature: float = 1.0) -> torch.Tensor:
    """TS2Vec's loss: at scale d = 0, 1, ... (the time axis max-pooled by 2 d times, an odd last step dropped),
    ``alpha`` x instance-wise contrast (groups = time steps, needs B >= 2) plus ``(1 - alpha)`` x temporal contrast
    (groups = series, needs T >= 2, only from scale ``temporal_unit`` on), down to one time step (instance-wise
    only there); the sum divided by the number of scales.

    Shape: z_a, z_b: (B, T, D), the two views' features on their common time steps. Output: scalar.
    """
    check.embeddings("z_a", z_a, 3, shape_hint="(B, T, D)")
    if z_a.shape != z_b.shape:
        raise ValueError(f"`z_a` and `z_b` must have the same shape (B, T, D), got {tuple(z_a.shape)} and "
                         f"{tuple(z_b.shape)}")
    a = float(alpha) if isinstance(alpha, (int, float)) and not isinstance(alpha, bool) else float("nan")
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1], got {alpha!r}")
    if isinstance(temporal_unit, bool) or not isinstance(temporal_unit, int) or temporal_unit < 0:
        raise ValueError(f"`temporal_unit` must be an int >= 0, got {temporal_unit!r}")
    b = z_a.shape[0]
    total, levels, d = z_a.new_zeros(()), 0, 0

    def instance(x, y):                                                        # groups = time steps
        return grouped_pair_loss(x.transpose(0, 1), y.transpose(0, 1), temperature=temperature) if b > 1 else 0.0

    def temporal(x, y):                                                        # groups = series
        return grouped_pair_loss(x, y, temperature=temperature) if x.shape[1] > 1 else 0.0
    while z_a.shape[1] > 1:
        if a > 0:
            total = total + a * instance(z_a, z_b)
        if d >= temporal_unit and a < 1:
            total = total + (1 - a) * temporal(z_a, z_b)
        d += 1
        levels += 1
        z_a = F.max_pool1d(z_a.transpose(1, 2), kernel_size=2).transpose(1, 2)
        z_b = F.max_pool1d(z_b.transpose(1, 2), kernel_size=2).transpose(1, 2)
    if a > 0:
        total = total + a * instance(z_a, z_b)
        levels += 1
    return total / levels
