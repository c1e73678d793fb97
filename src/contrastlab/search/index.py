"""A nearest-neighbour index over L2-normalised vectors: FAISS inner product, exact or approximate.

Up to `exact_max` vectors (default 50,000) the index is exact (`IndexFlatIP`); past it, approximate: HNSW by
default, IVF-Flat with `kind="ivf"`. An approximate index measures its own recall@k against exact search on
sample queries (corpus rows leaving themselves out, and mixtures of corpus rows; or real queries you give) and,
unless `ef_search` / `nprobe` is given, picks the smallest search effort that reaches `target_recall`; both end
up in `meta` (see `contrastlab.search.recall`). Recall counts ties: a returned document as similar as the true
k-th best one is a correct answer even if exact search listed another of the tied ones.

>>> import numpy as np
>>> x = np.eye(3, dtype=np.float32)                                   # (N, D) = (3, 3)
>>> index = VectorIndex.build(x, ["a", "b", "c"], texts=["first", "second", "third"])
>>> scores, ids = index.search(np.array([[0.0, 0.6, 0.8]]), 2)         # (Q, D) = (1, 3)
>>> ids, scores.astype(float).round(2).tolist()
([['c', 'b']], [[0.8, 0.6]])
>>> index.search(np.array([[0.0, 0.6, 0.8]]), 5, allowed_ids=["a", "b"])[1]
[['b', 'a']]

Scores are cosine similarities (rows and queries are normalised here). `k` larger than the number of candidates
returns all of them. Filtering by `allowed_ids` is exact over the allowed subset when it holds at most
`filter_exact_max` ids, else it goes through a faiss `IDSelector` (and a query that the approximate index answers
with fewer than k hits is answered exactly over the subset).
"""
from __future__ import annotations

import time
from typing import Sequence

import faiss
import numpy as np

from .. import __version__
from .folders import IndexFolderError, read_index, save_index
from .recall import exact_top_k, tune_effort
from .rows import Rows, positive_int

__all__ = ["VectorIndex", "KINDS"]

from .kinds import KINDS  # noqa: E402


_positive_int = positive_int


def _normalised(name: str, x, dim: int | None = None) -> np.ndarray:
    """float32 copy of a (N, D) array with unit rows; clear errors for the wrong shape, NaN/inf or zero rows."""
    a = np.asarray(x)
    if a.ndim != 2 or (dim is not None and a.shape[1] != dim) or a.shape[1] == 0:
        want = f"(N, {dim})" if dim is not None else "(N, D) with D >= 1"
        raise ValueError(f"`{name}` must be a 2-D array of shape {want}, got shape {a.shape}")
    if a.dtype.kind not in "fiu":
        raise ValueError(f"`{name}` must hold numbers, got dtype {a.dtype}")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"`{name}` must be finite; row {int(np.where(~np.isfinite(a).all(1))[0][0])} has NaN or inf")
    norms = np.linalg.norm(a, axis=1, keepdims=True)                   # (N, 1)
    if (norms == 0).any():
        raise ValueError(f"`{name}` row {int(np.where(norms[:, 0] == 0)[0][0])} is all zeros and has no direction")
    return np.ascontiguousarray(a / norms)


def _flat(x: np.ndarray):
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    return index


class VectorIndex(Rows):
    """Cosine nearest neighbours over documents with string ids (and optional texts). Build with `build`,
    persist with `save` / `load` (see `contrastlab.search.store`, `contrastlab.search.folders`).

    `filter_exact_max`: a filtered search over at most this many allowed ids is done exactly over them (fast for
    small subsets, and exact); larger subsets go through a faiss IDSelector on the index itself.
    """

    def __init__(self, faiss_index, ids: Sequence[str], texts: Sequence[str] | None, meta: dict, *,
                 filter_exact_max: int = 10_000):
        self.faiss = faiss_index
        self._set_rows(ids, texts, meta)
        if faiss_index.ntotal != len(self.ids):
            raise ValueError(f"the faiss index holds {faiss_index.ntotal} vectors but there are {len(self.ids)} ids")
        if self.texts is not None and len(self.texts) != len(self.ids):
            raise ValueError(f"`texts` must have one entry per id ({len(self.ids)}), got {len(self.texts)}")
        if isinstance(filter_exact_max, bool) or not isinstance(filter_exact_max, int) or filter_exact_max < 0:
            raise ValueError(f"`filter_exact_max` must be an int >= 0, got {filter_exact_max!r}")
        self.filter_exact_max = filter_exact_max

    # -- properties ---------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.faiss.d)

    def __repr__(self) -> str:
        return f"VectorIndex(kind={self.kind!r}, count={self.count}, dim={self.dim}" + self._recall_repr()

    # -- building -----------------------------------------------------------------------------------
    @classmethod
    def build(cls, vectors, ids: Sequence[str], *, texts: Sequence[str] | None = None, kind: str = "auto",
              exact_max: int = 50_000, hnsw_m: int = 32, ef_construction: int = 80, ef_search: int | None = None,
              nlist: int | None = None, nprobe: int | None = None, target_recall: float = 0.95,
              recall_k: int = 10, recall_queries: int = 1000, tune_queries=None, seed: int = 0,
              embedder: str | None = None, auto_max_work: float = 0.1) -> "VectorIndex":
        """Index `vectors` (N, D) under `ids` (N unique strings). `kind`: auto (exact up to `exact_max` vectors,
        HNSW past it), exact, hnsw or ivf. `ef_search` (HNSW) / `nprobe` (IVF): fixed search effort; None picks the
        smallest that reaches `target_recall` on `recall_queries` sample queries (`tune_queries` (Q, D): real
        queries to measure on instead; see `tune`). `embedder`: where the vectors came from (a run directory),
        kept in `meta` for the CLI.

        With `kind="auto"`, an HNSW index that misses `target_recall`, or needs more than `auto_max_work` x N
        distance computations per query to reach it (data without neighbourhood structure, such as random
        vectors, where exact search is both faster and exact), is replaced by exact search; `meta["note"]` says
        why. The count of distances is faiss's own (deterministic, unlike a timing)."""
        if kind not in KINDS:
            raise ValueError(f"`kind` must be one of {', '.join(KINDS)}, got {kind!r}")
        for name, value in (("exact_max", exact_max), ("hnsw_m", hnsw_m), ("ef_construction", ef_construction),
                            ("recall_k", recall_k), ("recall_queries", recall_queries)):
            _positive_int(name, value)
        for name, value in (("ef_search", ef_search), ("nlist", nlist), ("nprobe", nprobe)):
            if value is not None:
                _positive_int(name, value)
        if not 0 < target_recall <= 1:
            raise ValueError(f"`target_recall` must be in (0, 1], got {target_recall!r}")
        if not 0 < auto_max_work <= 1:
            raise ValueError(f"`auto_max_work` must be in (0, 1], got {auto_max_work!r}")
        x = _normalised("vectors", vectors)                             # (N, D)
        n, d = x.shape
        if not isinstance(ids, (list, tuple)) or len(ids) != n:
            raise ValueError(f"`ids` must be a list with one id per vector ({n}), got "
                             f"{len(ids) if isinstance(ids, (list, tuple)) else type(ids).__name__}")
        for i, v in enumerate(ids):
            if not isinstance(v, str) or not v:
                raise ValueError(f"`ids[{i}]` must be a non-empty string, got {v!r}")
        if len(set(ids)) != n:
            seen, dup = set(), None
            for v in ids:
                if v in seen:
                    dup = v
                    break
                seen.add(v)
            raise ValueError(f"`ids` must be unique, got {dup!r} more than once")
        if texts is not None and (not isinstance(texts, (list, tuple)) or len(texts) != n):
            raise ValueError(f"`texts` must be a list with one text per vector ({n})")
        if tune_queries is not None:
            tune_queries = _normalised("tune_queries", tune_queries, d)
        auto = kind == "auto"
        if auto:
            kind = "exact" if n <= exact_max else "hnsw"
        start = time.perf_counter()
        params: dict = {}
        if kind == "exact":
            index = _flat(x)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.add(x)
            params = {"M": hnsw_m, "ef_construction": ef_construction, "ef_search": ef_search}
        else:
            nlist = nlist or max(1, min(n // 39, int(4 * np.sqrt(n))))  # faiss wants >= 39 points per list
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(seed)
            sample = x if n <= 64 * nlist else x[np.sort(rng.choice(n, 64 * nlist, replace=False))]
            index.cp.seed = seed
            index.train(sample)
            index.add(x)
            index.make_direct_map()                                     # reconstruct rows for filtered search
            params = {"nlist": nlist, "nprobe": nprobe}
        meta = {"kind": kind, "dim": d, "count": n, "metric": "cosine", "params": params, "recall": None,
                "recall_k": recall_k, "recall_queries": 0, "embedder": embedder,
                "contrastlab_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        built = cls(index, ids, texts, meta)
        if kind != "exact":
            built.tune(queries=tune_queries, target_recall=target_recall, recall_k=recall_k,
                       recall_queries=recall_queries, seed=seed, fixed=ef_search if kind == "hnsw" else nprobe)
            work = built.meta["distances_per_query"] / n
            if auto and (built.meta["recall"] < target_recall or work > auto_max_work):
                note = (f"HNSW ({', '.join(f'{k}={v}' for k, v in params.items())}) reached recall@{recall_k} "
                        f"{built.meta['recall']:.3f} computing {work:.0%} of the distances of exact search per "
                        f"query (target: recall {target_recall} within {auto_max_work:.0%}); exact search is used")
                meta.update(kind="exact", params={}, recall=None, recall_queries=0, note=note)
                for key in ("distances_per_query", "recall_by_queries"):
                    del meta[key]
                built = cls(_flat(x), ids, texts, meta)
        built.meta["build_seconds"] = round(time.perf_counter() - start, 3)
        return built

    def tune(self, *, queries=None, target_recall: float = 0.95, recall_k: int = 10, recall_queries: int = 1000,
             seed: int = 0, fixed: int | None = None) -> dict:
        """Measure recall@k of this approximate index against exact search (see `contrastlab.search.recall`) and,
        with `fixed` None, set the smallest `ef_search` (HNSW) / `nprobe` (IVF) whose recall reaches
        `target_recall` on every sample query set. `queries` (Q, D): real queries to measure on. Updates and
        returns `meta`. Shape: the stored vectors (N, D) are read back, not copied (HNSW)."""
        if self.kind == "exact":
            raise ValueError("`tune` is for approximate indexes; this one is exact (recall 1)")
        x = self.vectors_at(None)                                       # (N, D)
        if queries is not None:
            queries = _normalised("queries", queries, self.dim)
        k, sets, recalls = tune_effort(lambda q, kk: self.faiss.search(q, kk, params=self._params(kk))[1], x,
                                       self.meta["params"], kind=self.kind, queries=queries,
                                       target_recall=target_recall, recall_k=recall_k,
                                       recall_queries=recall_queries, seed=seed, fixed=fixed)
        if sets is None:
            self.meta.update(recall=None, distances_per_query=0.0)
            return self.meta
        stats = faiss.cvar.hnsw_stats if self.kind == "hnsw" else faiss.cvar.indexIVF_stats
        stats.reset()
        every = np.concatenate([q for q, _ in sets.values()])           # (m, D)
        self.faiss.search(every, k, params=self._params(k))
        work = stats.ndis / len(every) + (self.meta["params"]["nlist"] if self.kind == "ivf" else 0)   # + coarse
        self.meta.update(recall=min(recalls.values()), recall_by_queries=recalls, recall_k=k,
                         recall_queries=len(every), distances_per_query=round(work, 1))
        return self.meta

    def save(self, path) -> None:
        """Write to a folder atomically; see `contrastlab.search.folders.save_index`."""
        save_index(self, path)

    @classmethod
    def load(cls, path) -> "VectorIndex":
        """Read a folder written by `save` (IndexFolderError saying what is wrong); see
        `contrastlab.search.folders.read_index`."""
        return cls.from_parts(path, read_index(path))

    @classmethod
    def from_parts(cls, path, parts) -> "VectorIndex":
        """The index of the (faiss index, ids, texts, meta) `read_index` read from the folder `path`."""
        try:
            return cls(*parts)
        except ValueError as e:
            raise IndexFolderError(f"{path}: {e}") from None

    # -- searching ----------------------------------------------------------------------------------
    def _params(self, k: int, selector=None):
        p = self.meta["params"]
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=selector, efSearch=max(p.get("ef_search") or 64, k))
        if self.kind == "ivf":
            return faiss.SearchParametersIVF(sel=selector, nprobe=p.get("nprobe") or 8)
        return faiss.SearchParameters(sel=selector) if selector is not None else None

    def vectors_at(self, positions: np.ndarray | None) -> np.ndarray:
        """The stored unit vectors of rows `positions` (None: all rows, as a read-only view into the index where
        it keeps them in one block: valid while the index lives). Shape: (m,) -> (m, D)."""
        storage = self.faiss if self.kind == "exact" else (
            faiss.downcast_index(self.faiss.storage) if self.kind == "hnsw" else None)
        if storage is None:                                             # IVF: rows are spread over the lists
            rows = np.arange(self.count) if positions is None else positions
            return self.faiss.reconstruct_batch(np.asarray(rows, dtype=np.int64))
        view = faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * storage.d).reshape(storage.ntotal, storage.d)
        view.flags.writeable = False
        return view if positions is None else view[np.asarray(positions, dtype=np.int64)]

    def search(self, queries, k: int, *, allowed_ids: Sequence[str] | None = None
               ) -> tuple[np.ndarray, list[list[str]]]:
        """The k most similar documents of each query row, best first.

        Shape: queries (Q, D) -> scores (Q, k') float32 and ids (Q lists of k' ids), k' = min(k, candidates).
        """
        k = _positive_int("k", k)
        q = _normalised("queries", queries, self.dim)                   # (Q, D)
        if allowed_ids is None:
            k = min(k, self.count)
            scores, rows = self.faiss.search(q, k, params=self._params(k))
            return self._finish(q, scores, rows, k, None)
        allowed = self.allowed_positions(allowed_ids)
        k = min(k, len(allowed))
        if len(allowed) <= self.filter_exact_max:
            return self._exact_subset(q, k, allowed)
        selector = faiss.IDSelectorBatch(allowed)
        scores, rows = self.faiss.search(q, k, params=self._params(k, selector))
        return self._finish(q, scores, rows, k, allowed)

    def _exact_subset(self, q: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
        scores, local = exact_top_k(self.vectors_at(allowed), q, k)     # (Q, k)
        return scores.astype(np.float32), [[self.ids[allowed[j]] for j in row] for row in local]

    def _finish(self, q, scores, rows, k, allowed) -> tuple[np.ndarray, list[list[str]]]:
        """Map faiss rows to ids; a query an approximate index answered with fewer than k hits (-1 rows) is
        answered again exactly (over the allowed subset, or everything)."""
        ids = [[self.ids[j] for j in row] if min(row) >= 0 else [] for row in rows.tolist()]
        short = np.where((rows < 0).any(axis=1))[0]
        if len(short):
            subset = allowed if allowed is not None else np.arange(self.count)
            scores[short], redone = self._exact_subset(q[short], k, subset)
            for i, row in zip(short, redone):
                ids[i] = row
        return scores, ids
