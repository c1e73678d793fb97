"""Metric-learning retrieval: every labelled item queries all the others (itself left out) by cosine similarity,
scored by precision@k, R-precision and MAP@R (Musgrave, Belongie & Lim 2020, "A Metric Learning Reality Check",
section 3.2).

>>> import torch
>>> z = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.7, 0.7]])
>>> m = metric_retrieval(z, torch.tensor([0, 0, 1, 1, 2]), ks=(1,))
>>> m["precision@1"], m["r_precision"], m["map@r"], m["queries"], m["singletons"]
(1.0, 1.0, 1.0, 4, 1)
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch

from ..losses import validation as lcheck
from . import _checks as check
from .retrieval import top_k

__all__ = ["metric_retrieval", "METRIC_RETRIEVAL_KEYS"]

#: the score keys of :func:`metric_retrieval` with the default ``ks``, in table order
METRIC_RETRIEVAL_KEYS = ("precision@1", "precision@10", "r_precision", "map@r")
_CHUNK_ELEMENTS = 1 << 23                      # similarities per query chunk: 32 MiB of float32


def _ks(ks, n: int) -> tuple[int, ...]:
    if isinstance(ks, numbers.Integral) and not isinstance(ks, bool):
        ks = (ks,)
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Sequence) or len(ks) == 0:
        raise ValueError(f"`ks` must be a non-empty sequence of positive ints, got {ks!r}")
    ks = tuple(sorted({check.positive_int("ks", k) for k in ks}))
    if ks[-1] > n - 1:
        raise ValueError(f"`ks` must be at most N - 1 = {n - 1} (the other items a query can retrieve), "
                         f"got {ks[-1]}")
    return ks


def metric_retrieval(embeddings, labels, *, ks=(1, 10), chunk_size: int | None = None) -> dict:
    """Precision@k, R-precision and MAP@R of ``embeddings`` queried against themselves, self excluded.

    For a query of class c, R is the number of *other* items of class c and rel(i) is 1 when its i-th nearest
    neighbour (cosine similarity, exact search) is of class c:

    - ``precision@k`` = (1/k) sum_{i<=k} rel(i) (``precision@1`` is Musgrave et al.'s P@1);
    - ``r_precision`` = (1/R) sum_{i<=R} rel(i);
    - ``map@r`` = (1/R) sum_{i<=R} P(i) rel(i), with P(i) the precision of the i nearest neighbours.

    Every score is the mean over the queries (Musgrave et al. 2020, "A Metric Learning Reality Check", sec. 3.2;
    pytorch-metric-learning's AccuracyCalculator with ``avg_of_avgs=False``). A query whose class has no other item
    (R = 0) has no relevant item: it is left out of every mean, and ``singletons`` says how many were. Equal
    similarities rank the lower index first; a zero row has similarity 0 to everything. Queries go in chunks (by
    default 8M similarities, 32 MiB), so 70,000 items never hold the (N, N) matrix. float64 embeddings are
    compared in float64, others in float32, on the embeddings' device.

    >>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.1, 1.0]])
    >>> y = torch.tensor([0, 0, 1, 1])        # every nearest neighbour is of the other class
    >>> m = metric_retrieval(z, y, ks=(1, 2))
    >>> m["precision@1"], m["precision@2"]    # 2nd nearest: rows 0, 1 miss again, rows 2, 3 hit: (0+0+.5+.5)/4
    (0.0, 0.25)

    Shape: embeddings (N, D), labels (N,) ints >= 0 -> dict: ``precision@k`` for each k, ``r_precision``,
    ``map@r`` (floats in [0, 1]); ``queries`` (scored), ``singletons`` (left out), ``items`` (N).
    """
    if isinstance(embeddings, np.ndarray):
        embeddings = torch.from_numpy(embeddings)
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    z = check.features("embeddings", embeddings)
    n = z.shape[0]
    if n < 2:
        raise ValueError(f"`embeddings` must have at least 2 rows (a query needs another item), got {n}")
    y = check.class_labels("labels", labels, n, rows_of="embeddings")
    ks = _ks(ks, n)
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ELEMENTS // n)
    chunk = check.positive_int("chunk_size", chunk_size)

    y = y.cpu()
    counts = torch.bincount(y)                                                # (C,)
    r_all = counts[y] - 1                                                     # (N,) other items of the class
    scored = r_all > 0
    n_scored = int(scored.sum())
    if n_scored == 0:
        raise ValueError(f"`labels` must put at least 2 items in some class (a query needs another item of its "
                         f"class), got {n} items in {n} distinct classes")
    dt = lcheck.compute_dtype(z)
    zn = lcheck.normalize(z, dt)                                              # (N, D) unit rows
    sums = {f"precision@{k}": 0.0 for k in ks} | {"r_precision": 0.0, "map@r": 0.0}
    queries = scored.nonzero().squeeze(1)                                     # (Q,) the queries with R >= 1
    with torch.no_grad():
        for start in range(0, len(queries), chunk):
            rows = queries[start:start + chunk]                               # (c,)
            sim = zn[rows.to(zn.device)] @ zn.T                               # (c, N)
            sim[torch.arange(len(rows), device=sim.device), rows.to(sim.device)] = -torch.inf   # self excluded
            r = r_all[rows]                                                   # (c,)
            width = max(int(r.max()), ks[-1])
            nearest = top_k(sim, k=width)                                     # (c, K) CPU, best first
            rel = (y[nearest] == y[rows].unsqueeze(1)).double()               # (c, K)
            found = rel.cumsum(1)                                             # (c, K) relevant within the top i
            for k in ks:
                sums[f"precision@{k}"] += float((found[:, k - 1] / k).sum())
            within = torch.arange(1, width + 1) <= r.unsqueeze(1)             # (c, K) i <= R
            rd = r.double()
            sums["r_precision"] += float(((rel * within).sum(1) / rd).sum())
            precision = found / torch.arange(1, width + 1, dtype=torch.float64)   # (c, K) P(i)
            sums["map@r"] += float(((precision * rel * within).sum(1) / rd).sum())
    out: dict = {key: v / n_scored for key, v in sums.items()}
    out.update(queries=n_scored, singletons=n - n_scored, items=n)
    return out
