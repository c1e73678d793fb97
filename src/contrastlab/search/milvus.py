"""Vectors in a Milvus collection: the same queries as `VectorIndex`, past one machine.

`MilvusVectors.build` writes L2-normalised vectors with their string ids and texts to the collection `name` at
`uri`, a milvus-lite database (a path ending in `.db`, run embedded in this process) or a Milvus server or cluster
(`http(s)://host:port`, with `token` where it needs one). `MilvusVectors.open` reads it back; `search` answers
like `VectorIndex.search` (cosine similarities, best first). The index is FLAT (exact) up to `exact_max` vectors
and HNSW past it, or IVF_FLAT with `kind="ivf"`; an approximate one measures its recall@k against exact search
(see `contrastlab.search.recall`) and picks the smallest `ef` / `nprobe` reaching `target_recall`, as
`VectorIndex.tune` does; both go to `meta`, which is stored with the collection (its properties).

>>> import tempfile, numpy as np
>>> uri = tempfile.mkdtemp() + "/milvus.db"
>>> x = np.eye(3, dtype=np.float32)                                   # (N, D) = (3, 3)
>>> with MilvusVectors.build(x, ["a", "b", "c"], texts=["first", "second", "third"], uri=uri, name="docs") as v:
...     scores, ids = v.search(np.array([[0.0, 0.6, 0.8]]), 2)        # (Q, D) = (1, 3)
>>> ids, scores.astype(float).round(2).tolist()
([['c', 'b']], [[0.8, 0.6]])
>>> with MilvusVectors.open(uri, "docs") as v:
...     v.ids, v.texts, v.kind, v.search(np.array([[0.0, 0.6, 0.8]]), 5, allowed_ids=["a", "b"])[1]
(['a', 'b', 'c'], ['first', 'second', 'third'], 'exact', [['b', 'a']])

Rows are keyed by position (an INT64 primary key 0..N-1) and hold `doc_id`, `text` and `vector`. A build writes a
new collection `<name>__building` and renames it to `name` only once it is complete, so the old one stays whole
until then; it replaces only a collection that contrastlab wrote. A milvus-lite database can be open in one
process at a time; `close` (or leaving a `with` block) shuts its embedded server down once nothing uses it.
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable, Sequence

import numpy as np

from .. import __version__
from .index import KINDS, _normalised, _positive_int
from .milvus_store import (FORMAT, FORMAT_VERSION, MilvusCollectionError, check_name, check_strings, check_uri,
                           connect, insert_rows, make_schema, owned_properties, read_docs, release)
from .recall import exact_top_k, tune_effort
from .rows import Rows

__all__ = ["MilvusVectors", "MilvusCollectionError"]

INDEX_TYPES = {"exact": "FLAT", "hnsw": "HNSW", "ivf": "IVF_FLAT"}
MAX_TOPK = 16384                    # Milvus's limit on results per query
CORE_META = {"kind", "dim", "count", "metric", "params", "recall", "recall_k", "recall_queries", "embedder", "backend",
             "uri", "collection", "index_type", "contrastlab_version", "created", "build_seconds", "note",
             "recall_by_queries"}


class MilvusVectors(Rows):
    """Cosine nearest neighbours over documents with string ids (and optional texts) in a Milvus collection; the
    query surface of `VectorIndex` (`dim`, `count`, `kind`, `ids`, `texts`, `meta`, `text_of`, `unknown_ids`,
    `vectors_at`, `search`). Make one with `build` or `open`; `close` it (or use it in a `with` block)."""

    def __init__(self, client, name: str, ids: Sequence[str], texts: Sequence[str] | None, meta: dict, *,
                 lite: str | None = None):
        self.client, self.name, self._lite = client, name, lite
        try:
            self._set_rows(ids, texts, meta, not_unique=f"collection {name!r}: its ids are not unique")
        except ValueError as e:
            raise MilvusCollectionError(str(e)) from None

    # -- properties ---------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    def __repr__(self) -> str:
        return (f"MilvusVectors(collection={self.name!r}, kind={self.kind!r} (Milvus {self.meta.get('index_type')})"
                f", count={self.count}, dim={self.dim}" + self._recall_repr())

    def _live(self):
        if self.client is None:
            raise ValueError(f"collection {self.name!r} was closed; open it again with `MilvusVectors.open`")
        return self.client

    def close(self) -> None:
        """Close the connection (and a milvus-lite database's embedded server once nothing else uses it)."""
        if self.client is not None:
            release(self.client, self._lite)
            self.client = None

    def __enter__(self) -> "MilvusVectors":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- building -----------------------------------------------------------------------------------
    @classmethod
    def build(cls, vectors, ids: Sequence[str], *, uri, name: str, texts: Sequence[str] | None = None,
              token: str | None = None, kind: str = "auto", exact_max: int = 50_000, hnsw_m: int = 32,
              ef_construction: int = 80, ef_search: int | None = None, nlist: int | None = None,
              nprobe: int | None = None, target_recall: float = 0.95, recall_k: int = 10, recall_queries: int = 1000,
              tune_queries=None, seed: int = 0, embedder: str | None = None, extra_meta: dict | None = None,
              batch_bytes: int = 8 << 20, log: Callable[[str], None] | None = None) -> "MilvusVectors":
        """Write `vectors` (N, D) under `ids` (N unique strings) to collection `name` at `uri`. `kind`: auto
        (FLAT up to `exact_max` vectors, HNSW past it, FLAT again if HNSW cannot reach `target_recall`), exact,
        hnsw or ivf; the other arguments as in `VectorIndex.build`. `extra_meta`: JSON values kept in `meta`.
        Rows go in batches of about `batch_bytes`; `log` gets a line per step."""
        if kind not in KINDS:
            raise ValueError(f"`kind` must be one of {', '.join(KINDS)}, got {kind!r}")
        for key, value in (("exact_max", exact_max), ("hnsw_m", hnsw_m), ("ef_construction", ef_construction),
                           ("recall_k", recall_k), ("recall_queries", recall_queries), ("batch_bytes", batch_bytes)):
            _positive_int(key, value)
        for key, value in (("ef_search", ef_search), ("nlist", nlist), ("nprobe", nprobe)):
            if value is not None:
                _positive_int(key, value)
        if not 0 < target_recall <= 1:
            raise ValueError(f"`target_recall` must be in (0, 1], got {target_recall!r}")
        uri, lite = check_uri(uri)
        name = check_name(name)
        x = _normalised("vectors", vectors)                             # (N, D)
        n, d = x.shape
        ids = check_strings("ids", ids, n)
        if len(set(ids)) != n:
            seen = set()
            dup = next(v for v in ids if v in seen or seen.add(v))
            raise ValueError(f"`ids` must be unique, got {dup!r} more than once")
        texts = None if texts is None else check_strings("texts", texts, n)
        if tune_queries is not None:
            tune_queries = _normalised("tune_queries", tune_queries, d)
        extra = dict(extra_meta or {})
        try:
            json.dumps(extra)
        except (TypeError, ValueError) as e:
            raise ValueError(f"`extra_meta` must hold JSON values, got {e}") from None
        core = set(extra) & CORE_META
        if core:
            raise ValueError(f"`extra_meta` must not set the keys build sets itself, got {sorted(core)}")
        say = log or (lambda line: None)
        auto = kind == "auto"
        if auto:
            kind = "exact" if n <= exact_max else "hnsw"
        start = time.perf_counter()
        if lite is not None:
            os.makedirs(os.path.dirname(lite), exist_ok=True)
        client = connect(uri, token, lite)
        temp, created = name + "__building", False
        try:
            owned_properties(client, name)                                         # refuse before writing anything
            if owned_properties(client, temp) is not None:
                client.drop_collection(temp)                            # an interrupted build's leftover
            created = True
            client.create_collection(temp, schema=make_schema(d, texts is not None), consistency_level="Strong",
                                     properties={"contrastlab.format": FORMAT, "contrastlab.state": "building"})
            insert_rows(client, temp, x, ids, texts, batch_bytes, say)
            client.flush(temp)
            params = ({"M": hnsw_m, "ef_construction": ef_construction, "ef_search": ef_search} if kind == "hnsw"
                      else {"nlist": nlist or max(1, min(n // 39, int(4 * np.sqrt(n)))), "nprobe": nprobe}
                      if kind == "ivf" else {})
            meta = {"kind": kind, "dim": d, "count": n, "metric": "cosine", "params": params, "recall": None,
                    "recall_k": recall_k, "recall_queries": 0, "embedder": embedder, **extra, "backend": "milvus",
                    "uri": uri, "collection": name, "index_type": INDEX_TYPES[kind],
                    "contrastlab_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            built = cls(client, temp, ids, texts, meta, lite=lite)
            built._index(kind, params)
            say(f"indexed {n} vectors as {INDEX_TYPES[kind]}")
            if kind != "exact":
                built.tune(queries=tune_queries, target_recall=target_recall, recall_k=recall_k,
                           recall_queries=recall_queries, seed=seed, fixed=ef_search if kind == "hnsw" else nprobe,
                           vectors=x, save=False)
                say(f"recall@{meta['recall_k']} {meta['recall']} with {params}")
                if auto and meta["recall"] < target_recall:
                    note = (f"HNSW ({', '.join(f'{k}={v}' for k, v in params.items())}) reached recall@{recall_k} "
                            f"{meta['recall']:.3f} < {target_recall}; exact search (FLAT) is used")
                    for key in ("recall_by_queries",):
                        meta.pop(key, None)
                    meta.update(kind="exact", index_type="FLAT", params={}, recall=None, recall_queries=0, note=note)
                    built._index("exact", {})
            meta["build_seconds"] = round(time.perf_counter() - start, 3)
            built._save_meta(state="complete")
            if client.has_collection(name):
                client.drop_collection(name)
            client.rename_collection(temp, name)
            client.load_collection(name)
            built.name = name
            say(f"wrote collection {name!r} at {uri}")
            return built
        except BaseException:
            try:
                if created and client.has_collection(temp):
                    client.drop_collection(temp)
            finally:
                release(client, lite)
            raise

    def _index(self, kind: str, params: dict) -> None:
        """(Re)build the collection's vector index and load it."""
        c = self.client
        if c.list_indexes(self.name):
            c.release_collection(self.name)
            c.drop_index(self.name, "vector")
        ip = c.prepare_index_params()
        build = ({"M": params["M"], "efConstruction": params["ef_construction"]} if kind == "hnsw"
                 else {"nlist": params["nlist"]} if kind == "ivf" else {})
        ip.add_index(field_name="vector", index_name="vector", index_type=INDEX_TYPES[kind], metric_type="COSINE",
                     params=build)
        c.create_index(self.name, ip, sync=self._lite is None)        # milvus-lite builds it on load
        c.load_collection(self.name)

    def _save_meta(self, state: str = "complete") -> None:
        self.client.alter_collection_properties(self.name, properties={
            "contrastlab.format": FORMAT, "contrastlab.format_version": FORMAT_VERSION, "contrastlab.state": state,
            "contrastlab.meta": json.dumps(self.meta)})

    def tune(self, *, queries=None, target_recall: float = 0.95, recall_k: int = 10, recall_queries: int = 1000,
             seed: int = 0, fixed: int | None = None, vectors=None, save: bool = True) -> dict:
        """Measure recall@k against exact search and, with `fixed` None, set the smallest `ef_search` (HNSW) /
        `nprobe` (IVF) reaching `target_recall` on every sample query set, as `VectorIndex.tune`. `vectors`: the
        stored vectors (N, D) if at hand (else read back). Updates `meta` (stored with the collection if `save`)."""
        if self.kind == "exact":
            raise ValueError("`tune` is for approximate indexes; this one is exact (recall 1)")
        x = self.vectors_at(None) if vectors is None else vectors      # (N, D)
        if queries is not None:
            queries = _normalised("queries", queries, self.dim)
        k, sets, recalls = tune_effort(lambda q, kk: self._search(q, kk)[1], x, self.meta["params"], kind=self.kind,
                                       queries=queries, target_recall=target_recall, recall_k=recall_k,
                                       recall_queries=recall_queries, seed=seed, fixed=fixed)
        if sets is None:
            self.meta.update(recall=None)
            return self.meta
        self.meta.update(recall=min(recalls.values()), recall_by_queries=recalls, recall_k=k,
                         recall_queries=sum(len(q) for q, _ in sets.values()))
        if save:
            self._save_meta()
        return self.meta

    # -- an index folder's record of where the collection lives --------------------------------------
    backend = "milvus"
    RECORD_FILE = "backend.json"

    def write_folder(self, folder) -> bytes:
        """Write `backend.json` (where this collection lives: the backend, the URI -- a milvus-lite path made
        absolute -- the collection name, dim and count; never a token) into the index folder `folder`; returns
        its bytes (the folder's meta.json keeps their checksum)."""
        uri, lite = check_uri(self.meta["uri"])
        record = {"backend": self.backend, "uri": lite if lite is not None else uri, "collection": self.name,
                  "dim": self.dim, "count": self.count}
        data = (json.dumps(record, indent=2) + "\n").encode()
        with open(os.path.join(folder, self.RECORD_FILE), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return data

    @classmethod
    def from_folder_record(cls, folder, record: dict) -> "MilvusVectors":
        """Open the collection an index folder's `backend.json` names (the token of a server that needs one comes
        from the MILVUS_TOKEN environment variable); MilvusCollectionError saying what is wrong."""
        if not isinstance(record, dict) or not isinstance(record.get("uri"), str) \
                or not isinstance(record.get("collection"), str):
            raise MilvusCollectionError(f"{os.path.join(folder, cls.RECORD_FILE)} must name the 'uri' and the "
                                        f"'collection' of the Milvus collection; rebuild the index")
        v = cls.open(record["uri"], record["collection"], token=os.environ.get("MILVUS_TOKEN"),
                     dim=record.get("dim"))
        if record.get("count") not in (None, v.count):
            v.close()
            raise MilvusCollectionError(f"collection {record['collection']!r} at {record['uri']} holds {v.count} "
                                        f"rows but the index folder {folder} was built with {record['count']}: it "
                                        f"was rewritten by another build; rebuild the index")
        return v

    # -- opening ------------------------------------------------------------------------------------
    @classmethod
    def open(cls, uri, name: str, *, token: str | None = None, dim: int | None = None) -> "MilvusVectors":
        """Connect to collection `name` at `uri` written by `build` and read its ids, texts and meta back.
        `dim`: the vector dimension expected (a MilvusCollectionError if it holds others)."""
        uri, lite = check_uri(uri)
        name = check_name(name)
        if dim is not None:
            _positive_int("dim", dim)
        if lite is not None and not os.path.exists(lite):
            raise MilvusCollectionError(f"there is no milvus-lite database at {uri}")
        client = connect(uri, token, lite)
        try:
            props = owned_properties(client, name)
            if props is None:
                there = [c for c in client.list_collections() if not c.endswith("__building")]
                raise MilvusCollectionError(f"there is no collection {name!r} at {uri} (collections there: "
                                            f"{', '.join(sorted(there)) or 'none'})")
            if props.get("contrastlab.state") != "complete" or "contrastlab.meta" not in props:
                raise MilvusCollectionError(f"collection {name!r} at {uri} was not finished writing")
            meta = json.loads(props["contrastlab.meta"])
            fields = {f["name"]: f for f in client.describe_collection(name)["fields"]}
            stored = int(fields["vector"]["params"]["dim"]) if "vector" in fields else None
            if stored != meta["dim"]:
                raise MilvusCollectionError(f"collection {name!r}: its vector field has dimension {stored} but its "
                                            f"contrastlab meta says {meta['dim']}")
            if dim is not None and dim != stored:
                raise MilvusCollectionError(f"collection {name!r} holds {stored}-dimensional vectors, expected "
                                            f"`dim` {dim}")
            client.load_collection(name)
            ids, texts = read_docs(client, name, meta["count"], "text" in fields)
            meta.update(uri=uri, collection=name)
            return cls(client, name, ids, texts, meta, lite=lite)
        except BaseException:
            release(client, lite)
            raise

    # -- searching ----------------------------------------------------------------------------------
    def _search_params(self, k: int) -> dict:
        p = self.meta["params"]
        if self.kind == "hnsw":
            return {"metric_type": "COSINE", "params": {"ef": max(p.get("ef_search") or 64, k)}}
        if self.kind == "ivf":
            return {"metric_type": "COSINE", "params": {"nprobe": p.get("nprobe") or 8}}
        return {"metric_type": "COSINE"}

    def _search(self, q: np.ndarray, k: int, allowed: np.ndarray | None = None):
        """Milvus's top-k rows of unit queries (-1 where it found fewer), up to 2^18 hits a request.
        Shape: (Q, D) -> (Q, k) x2."""
        chunk = max(1, min(1024, (1 << 18) // k))
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        rows = np.full((len(q), k), -1, dtype=np.int64)
        where = "" if allowed is None else f"pk in [{','.join(map(str, allowed.tolist()))}]"
        for a in range(0, len(q), chunk):
            hits = self._live().search(self.name, data=q[a:a + chunk].tolist(), limit=k, anns_field="vector",
                                      search_params=self._search_params(k), filter=where, output_fields=["pk"])
            for i, row in enumerate(hits):
                for j, hit in enumerate(row[:k]):
                    entity = hit.get("entity") or {}
                    rows[a + i, j] = entity["pk"] if "pk" in entity else hit.get("pk", hit.get("id"))
                    scores[a + i, j] = hit["distance"]
        return scores, rows

    def vectors_at(self, positions: np.ndarray | None) -> np.ndarray:
        """The stored unit vectors of rows `positions` (None: all rows), read back from Milvus. (m,) -> (m, D)."""
        rows = np.arange(self.count) if positions is None else np.asarray(positions, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        order = np.argsort(rows, kind="stable")
        step = max(1, min(10_000, (8 << 20) // (4 * self.dim)))
        client = self._live()
        for a in range(0, len(rows), step):
            want = rows[order[a:a + step]]
            got = {int(r["pk"]): r["vector"] for r in client.get(self.name, ids=np.unique(want).tolist(),
                                                                output_fields=["pk", "vector"])}
            out[order[a:a + step]] = [got[int(p)] for p in want]
        return out

    def search(self, queries, k: int, *, allowed_ids: Sequence[str] | None = None
               ) -> tuple[np.ndarray, list[list[str]]]:
        """The k most similar documents of each query row, best first, as `VectorIndex.search`.

        Shape: queries (Q, D) -> scores (Q, k') float32 and ids (Q lists of k' ids), k' = min(k, candidates).
        """
        k = _positive_int("k", k)
        q = _normalised("queries", queries, self.dim)                   # (Q, D)
        allowed = None if allowed_ids is None else self.allowed_positions(allowed_ids)
        k = min(k, self.count if allowed is None else len(allowed))
        if k > MAX_TOPK:
            raise ValueError(f"`k` must be at most {MAX_TOPK} with the Milvus backend (Milvus's limit on results "
                             f"per query), got {k}")
        scores, rows = self._search(q, k, allowed)
        short = np.where((rows < 0).any(axis=1))[0]                     # an approximate index found fewer than k
        if len(short):
            subset = allowed if allowed is not None else np.arange(self.count)
            exact, local = exact_top_k(self.vectors_at(subset), q[short], k)
            scores[short], rows[short] = exact, subset[local]
        return scores, [[self.ids[j] for j in row] for row in rows.tolist()]
