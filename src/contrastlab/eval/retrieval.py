"""Retrieval evaluation: rank a corpus for every query, then score the rankings (recall@k, success@k,
MRR@10, nDCG@10, MAP@K), so any model or baseline that maps strings to vectors can be compared.

>>> import torch
>>> q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
>>> docs = torch.tensor([[0.0, 2.0], [1.0, 0.1], [1.0, 1.0]])
>>> ranked = rank(q, docs, k=2)
>>> ranked.tolist()
[[1, 2], [0, 2]]
>>> m = retrieval_metrics(ranked, [[1], [2]], ks=(1, 2), cutoff=2)
>>> m["recall@1"], m["recall@2"], m["mrr@2"]
(0.5, 1.0, 0.75)
"""
from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import _checks as check

__all__ = ["top_k", "rank", "retrieval_metrics", "evaluate_retrieval", "SIMILARITIES"]

SIMILARITIES = ("cosine", "dot")
_CHUNK_ELEMENTS = 1 << 23                      # score entries per query chunk: 32 MiB of float32


def top_k(scores: torch.Tensor, *, k: int) -> torch.Tensor:
    """Column indices of the k largest scores of each row, best first; equal scores go to the lower index first,
    whatever the sort kernel does. Columns past the row length (k > N) are padded with -1.

    >>> top_k(torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0]]), k=2).tolist()
    [[1, 2]]

    Shape: scores (M, N) -> (M, k) int64.
    """
    if not torch.is_tensor(scores) or scores.dim() != 2 or scores.shape[1] == 0:
        what = f"shape {tuple(scores.shape)}" if torch.is_tensor(scores) else type(scores).__name__
        raise ValueError(f"`scores` must be a (M, N) tensor with N >= 1, got {what}")
    k = check.positive_int("k", k)
    m, n = scores.shape
    kk = min(k, n)
    vals, idx = scores.topk(kk, dim=1)                                        # (M, kk), set arbitrary among ties
    if kk < n:
        kth = vals[:, -1:]                                                    # (M, 1)
        open_tie = (scores == kth).sum(1) > (vals == kth).sum(1)              # ties cut by the boundary
        if bool(open_tie.any()):
            rows = open_tie.nonzero().squeeze(1)
            s, t = scores[rows], kth[rows]                                    # (r, N), (r, 1)
            above, equal = s > t, s == t
            need = kk - above.sum(1, keepdim=True)                            # (r, 1) places left for ties
            take = above | (equal & (equal.cumsum(1) <= need))                # exactly kk per row, low index first
            idx = idx.clone()
            idx[rows] = take.nonzero()[:, 1].view(len(rows), kk)
    idx, _ = idx.sort(dim=1)                                                  # index order ...
    order = scores.gather(1, idx).argsort(dim=1, descending=True, stable=True)  # ... kept among equal scores
    idx = idx.gather(1, order).cpu()
    if kk < k:
        idx = torch.cat([idx, idx.new_full((m, k - kk), -1)], dim=1)
    return idx


def _as_float_matrix(name: str, value) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    return check.features(name, value)


def rank(query_emb, doc_emb, *, k: int, similarity: str = "cosine", chunk_size: int | None = None) -> torch.Tensor:
    """The k best documents of every query by cosine similarity (or raw inner product with ``similarity="dot"``).

    Queries go in chunks (by default as many as keep a chunk's score matrix at 8M entries, 32 MiB), so 2,000
    queries over 117,000 documents never hold the full (Q, N) matrix. Ties go to the lower document index; with
    ``k > N`` the columns past N are -1 ("no document"), which `retrieval_metrics` counts as a miss.

    >>> rank(torch.eye(3), torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), k=3).tolist()
    [[1, 0, -1], [0, 1, -1], [0, 1, -1]]

    Shape: query_emb (Q, D), doc_emb (N, D) -> (Q, k) int64, CPU.
    """
    q = _as_float_matrix("query_emb", query_emb)
    d = _as_float_matrix("doc_emb", doc_emb)
    check.same_width("query_emb", q, "doc_emb", d)
    k = check.positive_int("k", k)
    if similarity not in SIMILARITIES:
        raise ValueError(f"`similarity` must be one of {SIMILARITIES}, got {similarity!r}")
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ELEMENTS // d.shape[0])
    chunk_size = check.positive_int("chunk_size", chunk_size)
    dtype = torch.float64 if torch.float64 in (q.dtype, d.dtype) else torch.float32
    q, d = q.to(dtype), d.to(device=q.device, dtype=dtype)
    if similarity == "cosine":
        q, d = F.normalize(q, dim=1), F.normalize(d, dim=1)                   # (Q, D), (N, D)
    out = [top_k(q[i:i + chunk_size] @ d.T, k=k) for i in range(0, q.shape[0], chunk_size)]  # (c, N) -> (c, k)
    return torch.cat(out)


def _ks(ks) -> tuple[int, ...]:
    if isinstance(ks, numbers.Integral):
        ks = (ks,)
    if not isinstance(ks, Sequence) or len(ks) == 0:
        raise ValueError(f"`ks` must be a non-empty sequence of positive ints, got {ks!r}")
    return tuple(sorted({check.positive_int("ks", k) for k in ks}))


def _ranked_matrix(ranked) -> torch.Tensor:
    if isinstance(ranked, np.ndarray):
        ranked = torch.from_numpy(ranked)
    if not torch.is_tensor(ranked) or ranked.is_floating_point() or ranked.is_complex() or ranked.dtype == torch.bool:
        what = f"dtype {ranked.dtype}" if torch.is_tensor(ranked) else type(ranked).__name__
        raise TypeError(f"`ranked` must be an integer tensor or array of document indices (Q, K), got {what}")
    if ranked.dim() != 2 or 0 in ranked.shape:
        raise ValueError(f"`ranked` must have a non-empty shape (Q, K), got {tuple(ranked.shape)}")
    ranked = ranked.detach().cpu().long()
    if int(ranked.min()) < -1:
        raise ValueError(f"`ranked` must hold document indices >= 0 (or -1 for an empty slot), got {int(ranked.min())}")
    s, _ = ranked.sort(dim=1)                                                 # (Q, K)
    dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
    if bool(dup.any()):
        row, col = (int(v) for v in dup.nonzero()[0])
        raise ValueError(f"`ranked` row {row} must not list a document twice, got {int(s[row, col + 1])} twice")
    return ranked


def _in_sorted(values: torch.Tensor, sorted_keys: torch.Tensor) -> torch.Tensor:
    """Whether each value is one of `sorted_keys` (binary search; torch.isin is ~10x slower here)."""
    pos = torch.searchsorted(sorted_keys, values).clamp(max=sorted_keys.numel() - 1)
    return sorted_keys[pos] == values


def _relevant_pairs(relevant, q: int) -> tuple[np.ndarray, np.ndarray]:
    """(query, doc) index pairs of the relevant lists, validated. Shape: (Q, *) ragged -> (P,), (P,)."""
    if isinstance(relevant, (str, bytes)) or not isinstance(relevant, Sequence):
        raise TypeError(f"`relevant` must be a list with one list of document indices per query, "
                        f"got {type(relevant).__name__}")
    if len(relevant) != q:
        raise ValueError(f"`relevant` must have one list per row of `ranked` ({q}), got {len(relevant)}")
    rows, docs = [], []
    for i, rel in enumerate(relevant):
        arr = np.asarray(rel) if isinstance(rel, (Sequence, np.ndarray, torch.Tensor)) and \
            not isinstance(rel, (str, bytes)) else None
        if arr is None or arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"`relevant[{i}]` must be a non-empty list of document indices, got {rel!r}")
        if arr.dtype.kind not in "iu":
            raise TypeError(f"`relevant[{i}]` must hold int document indices, got {rel!r}")
        if int(arr.min()) < 0:
            raise ValueError(f"`relevant[{i}]` must hold document indices >= 0, got {int(arr.min())}")
        rows.append(np.full(arr.size, i, dtype=np.int64))
        docs.append(arr.astype(np.int64))
    return np.concatenate(rows), np.concatenate(docs)


def retrieval_metrics(ranked, relevant: list[list[int]], *, ks=(1, 10, 100), cutoff: int = 10,
                      num_docs: int | None = None) -> dict[str, float]:
    """Mean recall@k, success@k, MRR@cutoff, nDCG@cutoff and MAP@K of ranked lists, with binary relevance.

    For a query with relevant set R and ranked list r_1..r_K (rel_i = 1 if r_i is in R):

    - ``recall@k`` = |top k ∩ R| / |R|; ``success@k`` = 1 if any of the top k is relevant (hit rate).
    - ``mrr@c`` = 1 / (position of the first relevant document), 0 if none is in the top c.
    - ``ndcg@c`` = sum_{i<=c} rel_i / log2(i + 1), divided by the same sum for an ideal list with
      min(|R|, c) relevant documents on top.
    - ``map@K`` (mean average precision over the list cut at K, its width) = (1/|R|) sum_{i<=K} rel_i * P@i,
      where P@i is the precision of the top i; the divisor is all of |R| (as trec_eval's ``map_cut``), so a
      relevant document below the cut lowers it.

    References: nDCG, Järvelin & Kekäläinen 2002 ("Cumulated gain-based evaluation of IR techniques"); MRR,
    Voorhees 1999 (TREC-8 question answering); MAP as in trec_eval. Every metric is averaged over queries. Relevant lists are sets (a repeated index counts once); -1 in
    ``ranked`` is an empty slot (a miss). ``K`` must be at least the largest of ``ks`` and ``cutoff``; pass
    ``num_docs`` to also check that indices are < N.

    >>> retrieval_metrics(torch.tensor([[3, 0, 1]]), [[0, 2]], ks=(1, 3), cutoff=3)["ndcg@3"]  # doctest: +ELLIPSIS
    0.3868...

    Shape: ranked (Q, K), relevant (Q, *) ragged -> dict of floats.
    """
    ranked = _ranked_matrix(ranked)
    q, width_k = ranked.shape
    ks = _ks(ks)
    cutoff = check.positive_int("cutoff", cutoff)
    need = max(ks[-1], cutoff)
    if width_k < need:
        raise ValueError(f"`ranked` must have at least max(ks, cutoff) = {need} columns, got K = {width_k}; "
                         f"rank with k >= {need}")
    rel_rows, rel_docs = _relevant_pairs(relevant, q)                        # (P,), (P,)
    width = max(int(ranked.max()), int(rel_docs.max())) + 1
    if num_docs is not None:
        num_docs = check.positive_int("num_docs", num_docs)
        if width > num_docs:
            where = "`ranked`" if int(ranked.max()) >= num_docs else "`relevant`"
            raise ValueError(f"{where} must hold document indices < num_docs = {num_docs}, got {width - 1}")
    keys = torch.unique(torch.from_numpy(rel_rows * width + rel_docs))         # sorted distinct query*width + doc
    n_rel = torch.bincount(keys // width, minlength=q)                        # (Q,) distinct relevant per query
    rows = torch.arange(q).unsqueeze(1)                                       # (Q, 1)
    hits = _in_sorted(torch.where(ranked >= 0, rows * width + ranked, -1), keys).double()  # (Q, K)
    n_rel = n_rel.double()                                                    # (Q,)
    out: dict[str, float] = {}
    found = hits.cumsum(1)                                                    # (Q, K) relevant within the top i
    for k in ks:
        out[f"recall@{k}"] = float((found[:, k - 1] / n_rel).mean())
    for k in ks:
        out[f"success@{k}"] = float((found[:, k - 1] > 0).double().mean())
    top = hits[:, :cutoff]                                                    # (Q, c)
    first = top.argmax(1)                                                     # (Q,) first hit (0 if none)
    out[f"mrr@{cutoff}"] = float((top.amax(1) / (first + 1).double()).mean())
    discount = 1.0 / torch.log2(torch.arange(2, cutoff + 2, dtype=torch.float64))  # (c,)
    ideal = torch.cumsum(discount, 0)[(n_rel.long().clamp(max=cutoff) - 1)]  # (Q,)
    out[f"ndcg@{cutoff}"] = float((top @ discount / ideal).mean())
    precision = found / torch.arange(1, width_k + 1, dtype=torch.float64)     # (Q, K) P@i
    out[f"map@{width_k}"] = float(((precision * hits).sum(1) / n_rel).mean())
    return out


def _encoded(name: str, value, rows: int) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not torch.is_tensor(value):
        raise TypeError(f"`{name}` must return a (N, D) float tensor or array, got {type(value).__name__}")
    value = check.features(f"{name}(...)", value)
    if value.shape[0] != rows:
        raise ValueError(f"`{name}` must return one row per input string ({rows}), got {value.shape[0]}")
    return value


def evaluate_retrieval(encode_queries: Callable[[list[str]], object], encode_docs: Callable[[list[str]], object],
                       data, *, ks=(1, 10, 100), cutoff: int = 10, similarity: str = "cosine") -> dict[str, float]:
    """Embed `data.queries` and `data.corpus` with the two callables (list[str] -> (N, D) tensor or array),
    rank the corpus for every query and return `retrieval_metrics` (ranked lists of max(ks, cutoff)).

    >>> from contrastlab.data.text import RetrievalData
    >>> data = RetrievalData(queries=["ab", "b"], corpus=["b", "ab", "a"], relevant=[[1], [0]])
    >>> bag = lambda texts: torch.tensor([[t.count("a"), t.count("b")] for t in texts], dtype=torch.float32)
    >>> evaluate_retrieval(bag, bag, data, ks=(1,))["recall@1"]
    1.0
    """
    if not callable(encode_queries) or not callable(encode_docs):
        raise TypeError("`encode_queries` and `encode_docs` must be callables mapping list[str] -> (N, D) vectors")
    ks = _ks(ks)
    cutoff = check.positive_int("cutoff", cutoff)
    docs = _encoded("encode_docs", encode_docs(list(data.corpus)), len(data.corpus))           # (N, D)
    queries = _encoded("encode_queries", encode_queries(list(data.queries)), len(data.queries))  # (Q, D)
    ranked = rank(queries, docs, k=max(ks[-1], cutoff), similarity=similarity)                  # (Q, K)
    return retrieval_metrics(ranked, data.relevant, ks=ks, cutoff=cutoff, num_docs=len(data.corpus))
