"""Weighted k-nearest-neighbour classification on cosine similarity (Wu et al. 2018, "Unsupervised
Feature Learning via Non-Parametric Instance Discrimination"), the standard quick read-out of a
frozen embedding."""

from __future__ import annotations

import torch

from ..losses import validation as lcheck
from . import _checks as check

__all__ = ["knn_predict", "knn_top1"]


def _distinct_rows(bank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(U, F) distinct rows and each row's (N,) index into them, or (bank, None) if no row repeats.

    Matrix products may round a dot product differently depending on a row's position, so exact
    duplicates would get similarities a few ulps apart; scoring the distinct rows once and
    broadcasting keeps their similarities bitwise equal, which the tie rule relies on. A random
    projection finds repeats cheaply; the exact ``unique`` runs only when some projection repeats.
    """
    r = torch.randn(bank.shape[1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    r = r.to(bank.device, bank.dtype)
    key = torch.cat([(bank[i:i + 8192] * r).sum(1) for i in range(0, bank.shape[0], 8192)])   # (N,)
    if torch.unique(key).numel() == bank.shape[0]:
        return bank, None
    distinct, inverse = torch.unique(bank, dim=0, return_inverse=True)
    return (bank, None) if distinct.shape[0] == bank.shape[0] else (distinct, inverse)


def _top_k_stable(sim: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest entries of each row, in descending order of value; entries tied at
    the k-th place are taken in column order, so the chosen *set* never depends on the sort kernel.

    Shape: sim (m, N) -> (m, k).
    """
    n = sim.shape[1]
    vals, idx = sim.topk(min(k + 1, n), dim=1)                               # (m, k+1), descending
    if k == n:
        return idx
    open_tie = vals[:, k] == vals[:, k - 1]                                  # the k-th value recurs outside
    idx = idx[:, :k]
    if bool(open_tie.any()):
        rows = open_tie.nonzero().squeeze(1)
        s, t = sim[rows], vals[rows, k - 1:k]                                # (r, N), (r, 1)
        e, above = s == t, s > t
        need = k - above.sum(1, keepdim=True)                                # (r, 1) tied places to fill
        take = above | (e & (e.cumsum(1) <= need))                           # exactly k per row
        chosen = take.nonzero()[:, 1].view(len(rows), k)                     # column order
        order = torch.argsort(s.gather(1, chosen), dim=1, descending=True, stable=True)
        idx = idx.clone()
        idx[rows] = chosen.gather(1, order)
    return idx


def knn_predict(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor, *,
                k: int = 200, temperature: float = 0.1, num_classes: int | None = None,
                chunk_size: int = 1024) -> torch.Tensor:
    """Predict each test row's class by a similarity-weighted vote of its k nearest training rows.

    Rows are L2-normalised; neighbour j of test row i votes for its label with weight
    ``exp(s_ij / temperature)`` (cosine similarity s), and the class with the largest summed weight
    wins (Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric Instance
    Discrimination", k = 200, temperature = 0.07-0.1 in the literature). Test rows go in chunks, so
    memory is O(chunk_size * N). ``k`` larger than N uses all N training rows.

    Ties are deterministic: training rows tied in similarity at the k-th place (duplicated rows
    included) are taken in training order, and classes tied in score go to the smallest class id
    (on CUDA, exact class ties hold under ``torch.use_deterministic_algorithms(True)``). float64
    inputs are computed in float64, everything else in float32.

    Example::

        >>> import torch
        >>> train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
        >>> knn_predict(train, torch.tensor([0, 0, 1]), torch.tensor([[1.0, 0.2], [0.1, 1.0]]), k=1)
        tensor([0, 1])

    Shape:
        train_feats: (N, F); train_labels: (N,) ints in [0, num_classes); test_feats: (M, F).
        Output: (M,) int64 on test_feats' device. num_classes defaults to max(train_labels) + 1.
    """
    check.features("train_feats", train_feats)
    check.features("test_feats", test_feats, rows="M")
    check.same_width("train_feats", train_feats, "test_feats", test_feats)
    n, m = train_feats.shape[0], test_feats.shape[0]
    c = check.optional_num_classes(num_classes)
    labels = check.class_labels("train_labels", train_labels, n, rows_of="train_feats", num_classes=c)
    kk = min(check.positive_int("k", k), n)
    t = lcheck.positive_number("temperature", temperature)
    chunk = check.positive_int("chunk_size", chunk_size)
    c = int(labels.max()) + 1 if c is None else c

    device = train_feats.device
    dt = lcheck.compute_dtype(train_feats, test_feats)
    bank, expand = _distinct_rows(lcheck.normalize(train_feats, dt))         # (U, F), (N,) or None
    labels = labels.to(device)
    preds = torch.empty(m, dtype=torch.int64, device=device)
    with torch.no_grad():
        for i in range(0, m, chunk):
            q = lcheck.normalize(test_feats[i:i + chunk].to(device), dt)     # (b, F)
            sim = q @ bank.T                                                  # (b, U)
            if expand is not None:
                sim = sim[:, expand]                                          # (b, N), duplicates equal
            idx = _top_k_stable(sim, kk)                                      # (b, k)
            s = sim.gather(1, idx)                                            # (b, k)
            w = ((s - s.max(1, keepdim=True).values) / t).exp()               # (b, k), shift-invariant vote
            votes = torch.zeros(len(q), c, dtype=dt, device=device)           # (b, C)
            votes.scatter_add_(1, labels[idx], w)                             # each class sums in value order
            preds[i:i + chunk] = votes.argmax(1)                              # first max: smallest id
    return preds.to(test_feats.device)


def knn_top1(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
             test_labels: torch.Tensor, *, k: int = 200, temperature: float = 0.1, num_classes: int | None = None,
             chunk_size: int = 1024) -> float:
    """Top-1 accuracy in [0, 1] of :func:`knn_predict` against ``test_labels``.

    Example::

        >>> import torch
        >>> train = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> knn_top1(train, torch.tensor([0, 1]), train.flip(0), torch.tensor([1, 1]), k=1)
        0.5

    Shape:
        test_labels: (M,) ints; a class absent from training is simply never predicted.
    """
    check.features("test_feats", test_feats, rows="M")
    c = check.optional_num_classes(num_classes)
    y = check.class_labels("test_labels", test_labels, test_feats.shape[0], rows_of="test_feats", num_classes=c)
    pred = knn_predict(train_feats, train_labels, test_feats, k=k, temperature=temperature, num_classes=c,
                       chunk_size=chunk_size)
    return float((pred == y.to(pred.device)).double().mean())
