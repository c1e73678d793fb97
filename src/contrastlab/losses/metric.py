"""Metric-learning losses on distances: triplet (with miners), margin contrastive, N-pair."""

from __future__ import annotations

from typing import Callable

import torch

from . import validation as check
from .lse import log1p_exp, tiled_lse

__all__ = ["triplet", "margin_contrastive", "n_pair", "DISTANCES", "MINERS", "pairwise_distance"]


def _safe_sqrt(d2: torch.Tensor) -> torch.Tensor:
    """sqrt with a zero (not NaN / Inf) gradient at 0, e.g. an embedding's distance to itself."""
    pos = d2 > 0
    return torch.where(pos, d2.clamp(min=1e-30).sqrt(), torch.zeros_like(d2))


def _cosine(a, b):
    return 1.0 - check.normalize(a, a.dtype) @ check.normalize(b, b.dtype).t()


def _squared_euclidean(a, b):
    d2 = (a * a).sum(1, keepdim=True) + (b * b).sum(1).unsqueeze(0) - 2.0 * a @ b.t()
    return d2.clamp(min=0.0)


#: Pairwise distances (N, D) x (M, D) -> (N, M). Euclidean distances use the raw embeddings.
DISTANCES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cosine": _cosine,
    "euclidean": lambda a, b: _safe_sqrt(_squared_euclidean(a, b)),
    "squared_euclidean": _squared_euclidean,
}


def pairwise_distance(a: torch.Tensor, b: torch.Tensor, distance: str) -> torch.Tensor:
    """(N, D), (M, D) -> (N, M) distances by name (a key of :data:`DISTANCES`)."""
    return DISTANCES[check.choice("distance", distance, DISTANCES)](a, b)


def _paired_distance(a: torch.Tensor, b: torch.Tensor, distance: str) -> torch.Tensor:
    """Row-wise distance between a_i and b_i: (B, D), (B, D) -> (B,)."""
    if distance == "cosine":
        return 1.0 - (check.normalize(a, a.dtype) * check.normalize(b, b.dtype)).sum(1)
    d2 = ((a - b) ** 2).sum(1)
    return d2 if distance == "squared_euclidean" else _safe_sqrt(d2)


def _batch_hard(dist, is_pos, is_neg, margin):
    """Hermans et al. 2017: per anchor, the farthest positive against the nearest negative."""
    far_pos = dist.masked_fill(~is_pos, float("-inf")).amax(1)                 # (B,)
    near_neg = dist.masked_fill(~is_neg, float("inf")).amin(1)                 # (B,)
    valid = is_pos.any(1) & is_neg.any(1)
    per = torch.relu(far_pos - near_neg + margin)[valid]
    return per.mean() if per.numel() else None


def _sorted_negatives(dist, is_neg):
    """Each anchor's negative distances ascending (non-negatives = +inf at the end) and their count."""
    srt, _ = dist.masked_fill(~is_neg, float("inf")).sort(1)                   # (B, B)
    return srt, is_neg.sum(1)


def _batch_all(dist, is_pos, is_neg, margin):
    """Every valid triplet; averages over those with a positive loss ("BA != 0", Hermans et al.).

    For each (anchor, positive) the negatives with d_an < d_ap + margin are a prefix of the sorted
    negatives, so the sum of their hinge terms is k * (d_ap + margin) - prefix_sum[k]: exact, in
    O(B^2 log B) time and O(B^2) memory instead of materialising B^3 triplets.
    """
    srt, _ = _sorted_negatives(dist, is_neg)
    finite = torch.isfinite(srt)
    prefix = torch.cat([srt.new_zeros(srt.shape[0], 1), torch.where(finite, srt, 0.0).cumsum(1)], 1)  # (B, B+1)
    thresh = (dist + margin).masked_fill(~is_pos, float("-inf"))               # (B, B): d_ap + margin
    k = torch.searchsorted(srt.detach(), thresh.detach().contiguous(), right=False)  # negatives < thresh
    k = torch.where(is_pos, k, torch.zeros_like(k))
    hinge = k * torch.where(is_pos, thresh, 0.0) - prefix.gather(1, k)
    count = int(k.sum())
    return hinge.sum() / count if count else None


def _semi_hard(dist, is_pos, is_neg, margin):
    """Schroff et al. 2015 (FaceNet): per (anchor, positive), the nearest negative farther than the
    positive; where none is, the farthest negative (the convention of TensorFlow Addons)."""
    srt, n_neg = _sorted_negatives(dist, is_neg)
    d_ap = dist.masked_fill(~is_pos, 0.0)
    idx = torch.searchsorted(srt.detach(), d_ap.detach().contiguous(), right=True)  # first d_an > d_ap
    last = (n_neg - 1).clamp(min=0).unsqueeze(1).expand_as(idx)
    idx = torch.where(idx < n_neg.unsqueeze(1), idx, last)
    d_an = srt.gather(1, idx)
    valid = is_pos & (n_neg > 0).unsqueeze(1)
    per = torch.relu(d_ap - d_an + margin)[valid]
    return per.mean() if per.numel() else None


#: Triplet miners: (distances, positive mask, negative mask, margin) -> loss or None (no triplet).
MINERS = {"batch_hard": _batch_hard, "batch_all": _batch_all, "semi_hard": _semi_hard}


def triplet(embeddings: torch.Tensor, labels: torch.Tensor, *, margin: float = 0.2, mining: str = "batch_hard",
            distance: str = "cosine") -> torch.Tensor:
    """Triplet margin loss ``max(d(a, p) - d(a, n) + margin, 0)`` with in-batch mining (Schroff et al.
    2015, "FaceNet"; Hermans et al. 2017, "In Defense of the Triplet Loss for Person Re-Identification").

    Mining: "batch_hard" (hardest positive and negative per anchor), "batch_all" (every valid triplet,
    averaged over the non-zero ones) or "semi_hard" (per positive pair, the nearest negative farther
    than the positive). Anchors without a positive or a negative are skipped; with no valid triplet
    the loss is 0 (still connected to the graph).

    Example::

        >>> import torch
        >>> from contrastlab.losses import triplet
        >>> z, y = torch.randn(8, 16), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
        >>> triplet(z, y, margin=0.2, mining="semi_hard").shape
        torch.Size([])

    Shape:
        embeddings: (B, D). labels: (B,) integers. Output: scalar.
    """
    check.embeddings("embeddings", embeddings, 2, shape_hint="(B, D)")
    y = check.labels(labels, embeddings.shape[0]).to(embeddings.device)
    m = check.positive_number("margin", margin, allow_zero=True)
    miner = MINERS[check.choice("mining", mining, MINERS)]
    dt = check.compute_dtype(embeddings)
    z = embeddings.to(dt)
    dist = pairwise_distance(z, z, distance)                                   # (B, B)
    same = y.unsqueeze(0) == y.unsqueeze(1)
    eye = torch.eye(len(y), dtype=torch.bool, device=z.device)
    loss = miner(dist, same & ~eye, ~same, m)
    return (loss if loss is not None else z.sum() * 0.0).to(embeddings.dtype)


def margin_contrastive(z_a: torch.Tensor, z_b: torch.Tensor, is_positive: torch.Tensor, *, margin: float = 1.0,
                       distance: str = "euclidean") -> torch.Tensor:
    """Contrastive loss of Hadsell, Chopra & LeCun 2006 ("Dimensionality Reduction by Learning an
    Invariant Mapping"): ``1/2 d^2`` for a positive pair, ``1/2 max(margin - d, 0)^2`` for a negative
    one, averaged over the pairs.

    Example::

        >>> import torch
        >>> from contrastlab.losses import margin_contrastive
        >>> a, b = torch.randn(4, 8), torch.randn(4, 8)
        >>> margin_contrastive(a, b, torch.tensor([True, False, True, False])).shape
        torch.Size([])

    Shape:
        z_a, z_b: (B, D). is_positive: (B,) bool (or 0/1 integers). Output: scalar.
    """
    check.pair("z_a", z_a, "z_b", z_b)
    pos = check.labels(is_positive, z_a.shape[0], name="is_positive").to(z_a.device)
    if bool(((pos != 0) & (pos != 1)).any()):
        raise ValueError(f"`is_positive` must hold only 0/1 or booleans, got values {torch.unique(pos).tolist()}")
    m = check.positive_number("margin", margin)
    check.choice("distance", distance, DISTANCES)
    dt = check.compute_dtype(z_a, z_b)
    d = _paired_distance(z_a.to(dt), z_b.to(dt), distance)                    # (B,)
    per = torch.where(pos.bool(), 0.5 * d ** 2, 0.5 * torch.relu(m - d) ** 2)
    return per.mean().to(z_a.dtype)


def n_pair(anchors: torch.Tensor, positives: torch.Tensor, *, l2_reg: float = 0.0) -> torch.Tensor:
    """Multi-class N-pair loss (Sohn 2016, "Improved Deep Metric Learning with Multi-class N-pair
    Loss Objective"): ``log(1 + sum_{j != i} exp(f_i . f+_j - f_i . f+_i))`` over raw inner products,
    plus ``l2_reg * mean_i (|f_i|^2 + |f+_i|^2)``, the paper's norm regulariser.

    Example::

        >>> import torch
        >>> from contrastlab.losses import n_pair
        >>> n_pair(torch.randn(8, 16), torch.randn(8, 16), l2_reg=0.002).shape
        torch.Size([])

    Shape:
        anchors, positives: (B, D), row i of each from class i. Output: scalar.
    """
    check.pair("anchors", anchors, "positives", positives)
    if anchors.shape[0] < 2:
        raise ValueError("`n_pair` needs a batch of at least 2 pairs (in-batch negatives), got B=1")
    reg = check.positive_number("l2_reg", l2_reg, allow_zero=True)
    dt = check.compute_dtype(anchors, positives)
    a, p = anchors.to(dt), positives.to(dt)
    per = log1p_exp(tiled_lse(a, p, scale=1.0, exclude_diag=True) - (a * p).sum(1))  # (B,) log(1 + sum ...)
    loss = per.mean()
    if reg:
        loss = loss + reg * ((a * a).sum(1) + (p * p).sum(1)).mean()
    return loss.to(anchors.dtype)
