"""Answering a query from an index's collection: a search that leaves the query itself out (`search_excluding_self`, for a query image that is in the index). The CLI
(`contrastlab search --exclude-self`) and the HTTP API ("exclude_self": true) both call it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SELF_SCORE", "search_excluding_self"]

#: `exclude_self`: a hit at least this similar to the query is the query itself (the same image embedded twice
#: agrees to float32 rounding) and is left out -- as is an exact duplicate of it.
SELF_SCORE = 0.9999


def search_excluding_self(collection, vectors, k: int, *, allowed_ids=None) -> tuple[list, list[list[str]]]:
    """`collection.search(vectors, k)` without the hits whose score is at least SELF_SCORE (the query itself, when
    it is in the index). Returns, per query, its scores (a 1-D float32 array of up to k) and ids.
    Shape: (Q, D) -> Q x (<= k,).

    >>> from contrastlab.search import VectorIndex
    >>> index = VectorIndex.build(np.eye(3) + 0.1, ["a", "b", "c"])
    >>> search_excluding_self(index, index.vectors_at(None)[:1], 1)[1]
    [['b']]
    """
    q = np.asarray(vectors, dtype=np.float32)                                          # (Q, D)
    limit = collection.count if allowed_ids is None else len(set(allowed_ids))
    extra = 1
    while True:
        want = min(k + extra, limit)
        scores, ids = collection.search(q, want, allowed_ids=allowed_ids)             # (Q, want)
        keep = [[j for j, s in enumerate(row) if s < SELF_SCORE][:k] for row in scores.tolist()]
        if want >= limit or all(len(row) == k for row in keep):
            break
        extra *= 4                                                                  # many duplicates: look further
    return ([scores[i][row].astype(np.float32) for i, row in enumerate(keep)],
            [[ids[i][j] for j in row] for i, row in enumerate(keep)])
