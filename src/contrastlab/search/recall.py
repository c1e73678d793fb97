"""How good an approximate index is: recall@k against exact search, on sample queries.

Real queries are rarely documents and lie between them. On 5,000 WordNet glosses embedded with wordllama, 500 short
real queries had recall@10 0.78 / 0.89 / 0.95 / 0.98 at HNSW ef_search 16 / 32 / 64 / 128; corpus rows used as
queries (each leaving itself out) had 0.99 already at 16; mixtures of three corpus rows 0.83 / 0.93 / 0.98 / 1.00.
So without real queries, `query_sets` takes half corpus rows and half mixtures, and an index is judged by the worse
of the two (still hopeful: give real queries where you have them).

>>> import numpy as np
>>> x = np.eye(4, dtype=np.float32)
>>> exact_top_k(x, np.array([[0.0, 0.8, 0.6, 0.0]], dtype=np.float32), 2)[1]
array([[1, 2]])
"""
from __future__ import annotations

from typing import Callable

import faiss
import numpy as np

__all__ = ["exact_top_k", "recall_at_k", "tie_aware_recall", "query_sets", "measure_recall", "EF_LADDER",
           "tune_effort"]

#: The HNSW search efforts tried, smallest first, until the target recall is reached.
EF_LADDER = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-k by inner product, best first, ties broken by row order. Shape: (N, D), (Q, D) -> (Q, k) x2."""
    scores = queries @ vectors.T                                        # (Q, N)
    k = min(k, vectors.shape[0])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else \
        np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))       # (Q, k) unordered
    top = np.take_along_axis(scores, part, 1)
    order = np.lexsort((part, -top), axis=1)                            # by score desc, then row
    rows = np.take_along_axis(part, order, 1)
    return np.take_along_axis(top, order, 1), rows


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each query's true top-k ids that a search found (-1: nothing). Shape: (Q, k), (Q, k) -> ().

    >>> recall_at_k(np.array([[1, 2], [3, 9]]), np.array([[2, 1], [3, 4]]))
    0.75
    """
    k = truth.shape[1]
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / k for f, t in zip(found, truth)]))


def tie_aware_recall(found_scores: np.ndarray, kth_scores: np.ndarray, *, tol: float = 1e-5) -> float:
    """Mean fraction of k returned (distinct) documents whose exact similarity reaches the true k-th best one, so
    any of several tied documents counts. Shape: (Q, k) exact scores of what was found (-inf: nothing), (Q,) -> ().

    >>> tie_aware_recall(np.array([[0.9, 0.5], [0.7, -np.inf]]), np.array([0.5, 0.6]))
    0.75
    """
    k = found_scores.shape[1]
    return float(np.mean(np.minimum((found_scores >= kth_scores[:, None] - tol).sum(1), k) / k))


def _without_own(rows: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Drop each query's own row from its k + 1 results (or the last result, if it is not among them).
    Shape: (m,), (m, k + 1) -> (m, k)."""
    mine = found == rows[:, None]
    drop = np.where(mine.any(axis=1), mine.argmax(axis=1), found.shape[1] - 1)       # (m,) first own column
    keep = np.ones(found.shape, dtype=bool)
    keep[np.arange(len(rows)), drop] = False
    return found[keep].reshape(len(rows), -1)


def query_sets(x: np.ndarray, *, count: int, seed: int = 0, queries: np.ndarray | None = None) -> dict:
    """Named sample query sets: {"given": (queries, None)}, or {"corpus": (rows of x, their row numbers),
    "mixed": (normalised sums of three random rows, None)}, `count` queries in all. Shape: x (N, D)."""
    if queries is not None:
        return {"given": (queries, None)}
    rng = np.random.default_rng(seed)
    n = len(x)
    m = min(count, n)
    rows = np.sort(rng.choice(n, m - m // 2, replace=False))
    sets = {"corpus": (x[rows], rows)}
    if m // 2:
        mix = x[rng.integers(0, n, (m // 2, 3))].sum(1)                 # (m/2, D)
        norms = np.linalg.norm(mix, axis=1, keepdims=True)
        sets["mixed"] = ((mix / np.where(norms > 0, norms, 1)).astype(np.float32), None)
    return sets


def measure_recall(search: Callable[[np.ndarray, int], np.ndarray], x: np.ndarray, sets: dict, k: int,
                   truth: dict | None = None) -> tuple[dict, dict]:
    """Tie-aware recall@k of `search(queries, k) -> (Q, k) rows` on each query set, against exact search over `x`;
    corpus-row queries leave themselves out. Returns ({name: recall}, truth) (pass truth back to reuse it)."""
    if truth is None:
        flat = faiss.IndexFlatIP(x.shape[1])
        flat.add(x)
        truth = {}
        for name, (q, rows) in sets.items():
            scores, found = flat.search(q, k + (rows is not None))     # (m, k or k + 1)
            if rows is not None:                                        # the k-th best of the other rows
                scores = -np.sort(-np.where(found == rows[:, None], -np.inf, scores), axis=1)
            truth[name] = scores[:, k - 1]                              # (m,)
    recalls = {}
    for name, (q, rows) in sets.items():
        found = search(q, k + (rows is not None))
        if rows is not None:
            found = _without_own(rows, found)                           # (m, k)
        found_scores = np.where(found >= 0, np.einsum("md,mkd->mk", q, x[found]), -np.inf)
        recalls[name] = round(tie_aware_recall(found_scores, truth[name]), 4)
    return recalls, truth


def tune_effort(search: Callable[[np.ndarray, int], np.ndarray], x: np.ndarray, params: dict, *, kind: str,
                queries: np.ndarray | None, target_recall: float, recall_k: int, recall_queries: int, seed: int,
                fixed: int | None):
    """Set `params["ef_search"]` (kind "hnsw") or `params["nprobe"]` ("ivf"; `params["nlist"]` lists) to the
    smallest effort whose recall@k reaches `target_recall` on every sample query set (`fixed`: that effort only),
    `search(queries, k)` -> (Q, k) rows answering with the effort in `params`. Returns (k, sets, recalls), or
    (k, None, None) when there is no neighbour to measure (k < 1). Shape: x (N, D), queries (Q, D)."""
    from .rows import positive_int
    n = len(x)
    k = min(recall_k, n - 1) if queries is None else min(recall_k, n)
    if k < 1:
        return k, None, None
    sets = query_sets(x, count=recall_queries, seed=seed, queries=queries)
    key = "ef_search" if kind == "hnsw" else "nprobe"
    if fixed is not None:
        ladder = [positive_int(key, fixed)]
    elif kind == "hnsw":
        ladder = list(EF_LADDER)
    else:
        nlist = params["nlist"]
        ladder = sorted({min(2 ** i, nlist) for i in range(int(np.ceil(np.log2(nlist))) + 1)})
    truth = recalls = None
    for effort in ladder:
        params[key] = effort
        recalls, truth = measure_recall(search, x, sets, k, truth)
        if min(recalls.values()) >= target_recall:
            break
    return k, sets, recalls
