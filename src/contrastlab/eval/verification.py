"""Verification: do two held-out embeddings share a label? Balanced same/different pairs scored by
cosine similarity, summarised by ROC AUC and the equal error rate (the face-verification protocol
of Huang et al. 2007, "Labeled Faces in the Wild", as used for embeddings by Schroff et al. 2015,
"FaceNet")."""

from __future__ import annotations

import torch

from ..losses import validation as lcheck
from . import _checks as check

__all__ = ["roc_auc", "equal_error_rate", "sample_pairs", "verification"]


def _scores_targets(scores, targets) -> tuple[torch.Tensor, torch.Tensor]:
    s = lcheck.embeddings("scores", scores, 1, shape_hint="(P,)")
    if not torch.is_tensor(targets) or targets.is_floating_point() or targets.is_complex():
        what = f"dtype {targets.dtype}" if torch.is_tensor(targets) else type(targets).__name__
        raise TypeError(f"`targets` must be a bool or integer tensor of 0/1 flags, got {what}")
    if tuple(targets.shape) != tuple(s.shape):
        raise ValueError(f"`targets` must have the shape of `scores` {tuple(s.shape)}, got {tuple(targets.shape)}")
    if targets.dtype != torch.bool and bool(((targets != 0) & (targets != 1)).any()):
        raise ValueError(f"`targets` must hold only 0 and 1, got values {torch.unique(targets).tolist()[:5]}")
    t = targets.bool().cpu()
    n_pos = int(t.sum())
    if n_pos == 0 or n_pos == len(t):
        raise ValueError(f"`targets` must contain both positives and negatives, got {n_pos} positive(s) of {len(t)}")
    return s.detach().cpu().double(), t


def roc_auc(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney U) formula, tied scores sharing their
    average rank: the probability that a random positive outscores a random negative, ties counting 1/2.

    Example::

        >>> import torch
        >>> roc_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        0.75

    Shape:
        scores: (P,) float, higher = more likely positive; targets: (P,) bool or 0/1 ints.
    """
    s, t = _scores_targets(scores, targets)
    _, inverse, counts = torch.unique(s, sorted=True, return_inverse=True, return_counts=True)
    upper = counts.cumsum(0).double()                                        # 1-based rank of each group's last
    avg_rank = upper - (counts.double() - 1) / 2                             # (U,) mean rank of each tie group
    n_pos = int(t.sum())
    n_neg = len(t) - n_pos
    rank_sum = float(avg_rank[inverse][t].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def equal_error_rate(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """The error rate where the false-positive rate equals the false-negative rate, interpolated
    linearly along the ROC curve between the two thresholds that bracket the crossing.

    Example::

        >>> import torch
        >>> equal_error_rate(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        0.5

    Shape:
        scores: (P,) float, higher = more likely positive; targets: (P,) bool or 0/1 ints.
    """
    s, t = _scores_targets(scores, targets)
    order = torch.argsort(s, descending=True, stable=True)
    s, t = s[order], t[order]
    last = torch.ones_like(t)
    last[:-1] = s[1:] != s[:-1]                                              # end of each tie group
    tp = t.double().cumsum(0)[last]                                          # (U,) accepted positives
    fp = (~t).double().cumsum(0)[last]                                       # (U,) accepted negatives
    zero = torch.zeros(1, dtype=torch.float64)
    fpr = torch.cat([zero, fp / fp[-1]])                                     # (U+1,) from threshold +inf
    fnr = torch.cat([zero + 1, 1 - tp / tp[-1]])
    d = fpr - fnr                                                            # non-decreasing, -1 ... +1
    i = int((d >= 0).nonzero()[0])                                           # first crossing, i >= 1
    w = float(-d[i - 1] / (d[i] - d[i - 1]))
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def sample_pairs(labels: torch.Tensor, *, pairs: int = 10000,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw ``pairs // 2`` same-label and ``pairs - pairs // 2`` different-label index pairs, with
    replacement, never pairing a row with itself. Same-label pairs: a uniform anchor among rows whose
    label occurs at least twice, and a uniform partner of its label; different-label pairs: a uniform
    anchor and a uniform partner among rows of other labels.

    Example::

        >>> import torch
        >>> a, b, same = sample_pairs(torch.tensor([0, 0, 1, 1, 2]), pairs=6)
        >>> same.tolist(), bool((a != b).all())
        ([True, True, True, False, False, False], True)

    Shape:
        labels: (N,) ints (any values). Output: a, b: (P,) int64 row indices; same: (P,) bool.
    """
    if not torch.is_tensor(labels) or labels.is_floating_point() or labels.is_complex() or labels.dim() != 1:
        what = (f"dtype {labels.dtype}, shape {tuple(labels.shape)}" if torch.is_tensor(labels)
                else type(labels).__name__)
        raise TypeError(f"`labels` must be a 1-d integer tensor (N,), got {what}")
    p = check.positive_int("pairs", pairs)
    if p < 2:
        raise ValueError(f"`pairs` must be >= 2 (one same-label and one different-label pair), got {p}")
    g = torch.Generator().manual_seed(check.seed(seed))
    _, inv, counts = torch.unique(labels.cpu(), return_inverse=True, return_counts=True)
    if len(counts) < 2:
        raise ValueError(f"`labels` must hold at least 2 distinct labels to form different-label pairs, "
                         f"got {len(counts)}")
    if int(counts.max()) < 2:
        raise ValueError("`labels` must have a label occurring at least twice to form same-label pairs, "
                         "got every label once")
    n = len(inv)
    order = torch.argsort(inv, stable=True)                                  # rows grouped by label
    starts = counts.cumsum(0) - counts                                       # (L,) first position per label
    rank = torch.empty(n, dtype=torch.int64)
    rank[order] = torch.arange(n) - starts[inv[order]]                       # position within its label
    n_same, n_diff = p // 2, p - p // 2

    eligible = (counts[inv] >= 2).nonzero().squeeze(1)
    a_same = eligible[torch.randint(len(eligible), (n_same,), generator=g)]
    c = inv[a_same]
    r = (torch.rand(n_same, generator=g, dtype=torch.float64) * (counts[c] - 1)).long()
    r = r + (r >= rank[a_same]).long()                                       # skip the anchor itself
    b_same = order[starts[c] + r]

    a_diff = torch.randint(n, (n_diff,), generator=g)
    c = inv[a_diff]
    r = (torch.rand(n_diff, generator=g, dtype=torch.float64) * (n - counts[c])).long()
    r = r + counts[c] * (r >= starts[c]).long()                              # skip the anchor's label block
    b_diff = order[r]

    same = torch.cat([torch.ones(n_same, dtype=torch.bool), torch.zeros(n_diff, dtype=torch.bool)])
    return torch.cat([a_same, a_diff]), torch.cat([b_same, b_diff]), same


def verification(feats: torch.Tensor, labels: torch.Tensor, *, pairs: int = 10000, seed: int = 0) -> dict:
    """Verification quality of held-out embeddings: balanced same/different-label pairs (see
    :func:`sample_pairs`) scored by cosine similarity.

    Example::

        >>> import torch
        >>> feats = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> verification(feats, torch.tensor([0, 0, 1, 1]), pairs=100)
        {'roc_auc': 1.0, 'eer': 0.0, 'pairs': 100}

    Shape:
        feats: (N, F); labels: (N,) ints. Output: {"roc_auc": float, "eer": float, "pairs": int}.
    """
    check.features("feats", feats)
    if torch.is_tensor(labels) and tuple(labels.shape) != (feats.shape[0],):
        raise ValueError(f"`labels` must have shape ({feats.shape[0]},), one label per row of `feats`, "
                         f"got {tuple(labels.shape)}")
    a, b, same = sample_pairs(labels, pairs=pairs, seed=seed)
    z = lcheck.normalize(feats.detach(), torch.float64)                      # (N, F)
    a, b = a.to(z.device), b.to(z.device)
    scores = (z[a] * z[b]).sum(1)                                            # (P,) cosine similarities
    return {"roc_auc": roc_auc(scores, same), "eer": equal_error_rate(scores, same), "pairs": len(same)}
