"""Text data as three containers: training pairs, a retrieval test set, and both together.

Every text source (pair files, click logs, the verse pairs, WordNet, interaction logs) is turned into a
:class:`TextData`: `train` holds `(anchor, positive)` pairs with optional hard negatives, `test` holds held-out
queries, a corpus and the relevant documents of each query. Splits are made by the loader and never leak: no test
query appears as a training anchor. The verse pairs and the WordNet reverse dictionary also keep every relevant
document out of `train`; in user pair files and click logs a document may be relevant to a test query and a
training query alike (a product clicked for many queries), WordNet synonyms may occur in training pairs of their
other senses, and interaction logs share items between train and test by nature; each loader's `notes` say which.

>>> pairs = PairData(anchors=["a cat", "a dog"], positives=["un gato", "un perro"])
>>> len(pairs), pairs.has_negatives
(2, False)
>>> test = RetrievalData(queries=["a cow"], corpus=["una vaca", "un pez"], relevant=[[0]])
>>> TextData(name="toy", train=pairs, test=test).summary()
'toy: 2 training pairs, 1 test queries over 2 documents'
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["PairData", "RetrievalData", "TextData", "hash_unit", "retrieval_set", "cached_json"]


def _check_strings(name: str, values, *, allow_empty: bool = False) -> None:
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"`{name}` must be a list of strings, got {type(values).__name__}")
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise TypeError(f"`{name}[{i}]` must be a string, got {type(v).__name__}")
        if not allow_empty and not v.strip():
            raise ValueError(f"`{name}[{i}]` must be a non-empty string, got {v!r}")


@dataclass
class PairData:
    """Training pairs: `anchors[i]` and `positives[i]` belong together; every other positive in a batch is a
    negative of anchor i unless `positive_ids` says it is the same document (then it is masked, not pushed away).

    Shape: anchors (N,), positives (N,), negatives (N, *) ragged, positive_ids (N,), labels (N,).
    """

    anchors: list[str]
    positives: list[str]
    negatives: list[list[str]] | None = None      # per pair: hard negatives (shown-but-not-clicked, mined), may be []
    positive_ids: list[str] | None = None          # document id of each positive (equal ids are not negatives)
    labels: np.ndarray | None = None               # optional int64 class of each pair (e.g. WordNet supersense)

    def __post_init__(self):
        _check_strings("anchors", self.anchors)
        _check_strings("positives", self.positives)
        n = len(self.anchors)
        if len(self.positives) != n:
            raise ValueError(f"`positives` must have one entry per anchor ({n}), got {len(self.positives)}")
        if n == 0:
            raise ValueError("`anchors` must hold at least one pair, got 0")
        if self.negatives is not None:
            if len(self.negatives) != n:
                raise ValueError(f"`negatives` must have one list per anchor ({n}), got {len(self.negatives)}")
            for i, negs in enumerate(self.negatives):
                _check_strings(f"negatives[{i}]", negs)
        if self.positive_ids is not None and len(self.positive_ids) != n:
            raise ValueError(f"`positive_ids` must have one id per anchor ({n}), got {len(self.positive_ids)}")
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.int64)
            if self.labels.shape != (n,):
                raise ValueError(f"`labels` must have shape ({n},), got {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.anchors)

    @property
    def has_negatives(self) -> bool:
        return self.negatives is not None and any(len(n) for n in self.negatives)

    def texts(self) -> list[str]:
        """Every training string once (anchors, positives, negatives): what a tokenizer is fitted on."""
        out = list(self.anchors) + list(self.positives)
        if self.negatives is not None:
            out += [t for negs in self.negatives for t in negs]
        return out


@dataclass
class RetrievalData:
    """A retrieval test set: each query's relevant documents are indices into `corpus`.

    Shape: queries (Q,), corpus (N,), doc_ids (N,), relevant (Q, *) ragged, query_labels (Q,).
    """

    queries: list[str]
    corpus: list[str]
    relevant: list[list[int]]
    doc_ids: list[str] | None = None
    query_labels: np.ndarray | None = None         # optional int64 class per query (dashboard colours)

    def __post_init__(self):
        _check_strings("queries", self.queries)
        _check_strings("corpus", self.corpus)
        q, n = len(self.queries), len(self.corpus)
        if q == 0 or n == 0:
            raise ValueError(f"a retrieval set needs at least one query and one document, got {q} and {n}")
        if len(self.relevant) != q:
            raise ValueError(f"`relevant` must have one list per query ({q}), got {len(self.relevant)}")
        for i, rel in enumerate(self.relevant):
            if not rel:
                raise ValueError(f"`relevant[{i}]` must name at least one document, got none")
            bad = [d for d in rel if not 0 <= int(d) < n]
            if bad:
                raise ValueError(f"`relevant[{i}]` must index the corpus (0..{n - 1}), got {bad[:3]}")
        if self.doc_ids is None:
            self.doc_ids = [str(i) for i in range(n)]
        elif len(self.doc_ids) != n:
            raise ValueError(f"`doc_ids` must have one id per document ({n}), got {len(self.doc_ids)}")
        if self.query_labels is not None:
            self.query_labels = np.asarray(self.query_labels, dtype=np.int64)
            if self.query_labels.shape != (q,):
                raise ValueError(f"`query_labels` must have shape ({q},), got {self.query_labels.shape}")


@dataclass
class TextData:
    """A text dataset: training pairs, an optional held-out retrieval set, and notes on how it was made."""

    name: str
    train: PairData
    test: RetrievalData | None = None
    classes: list[str] | None = None               # names of `labels` / `query_labels`, when there are any
    notes: list[str] = field(default_factory=list)
    tokenizer: str = "bpe"                         # the tokenizer kind that suits the text ("words" for item ids)
    baselines: tuple[str, ...] = ("bm25", "tfidf", "wordllama")   # what the evaluation compares against
    exclude_history: bool = False                  # rank without the corpus items named in the query (a user's
                                                   # history, in recommendation)

    modality = "text"

    def __len__(self) -> int:
        return len(self.train)

    def summary(self) -> str:
        s = f"{self.name}: {len(self.train)} training pairs"
        if self.test is not None:
            s += f", {len(self.test.queries)} test queries over {len(self.test.corpus)} documents"
        return s


# ---- small helpers shared by the text loaders -------------------------------------------------------------


def hash_unit(key: str, *, seed: int = 0) -> float:
    """A number in [0, 1) that depends only on `key` and `seed`: the same on every machine and Python run.

    Loaders hold out a text when ``hash_unit(text, seed=seed) < fraction``, so a split never depends on file order.

    >>> hash_unit("John 3", seed=0) == hash_unit("John 3", seed=0), 0 <= hash_unit("x") < 1
    (True, True)
    """
    digest = hashlib.blake2b(f"{seed}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64


def retrieval_set(queries: Sequence[str], relevant_texts: Sequence[Sequence[str]], *,
                  corpus: Sequence[str] | None = None, doc_ids: Sequence[str] | None = None,
                  query_labels=None) -> RetrievalData:
    """A :class:`RetrievalData` whose relevant documents are given as texts.

    Every corpus entry whose text equals one of a query's relevant texts counts as relevant (no model can tell two
    identical documents apart). Without `corpus`, the corpus is the distinct relevant texts in order of appearance.

    >>> r = retrieval_set(["q1", "q2"], [["b"], ["a", "b"]], corpus=["a", "b", "c", "b"])
    >>> r.relevant
    [[1, 3], [0, 1, 3]]
    >>> retrieval_set(["q1", "q2"], [["y"], ["x", "y"]]).corpus
    ['y', 'x']
    """
    if corpus is None:
        corpus = list(dict.fromkeys(t for texts in relevant_texts for t in texts))
    where: dict[str, list[int]] = {}
    for i, text in enumerate(corpus):
        where.setdefault(text, []).append(i)
    relevant = []
    for q, texts in enumerate(relevant_texts):
        hits = sorted({i for t in texts for i in where.get(t, ())})
        if not hits:
            raise ValueError(f"query {q} ({queries[q]!r}): none of its relevant texts is in the corpus")
        relevant.append(hits)
    return RetrievalData(queries=list(queries), corpus=list(corpus), relevant=relevant,
                         doc_ids=None if doc_ids is None else list(doc_ids), query_labels=query_labels)


def cached_json(path: str | os.PathLike, *, key: dict, build: Callable[[], Any]) -> tuple[Any, bool]:
    """``(data, from_cache)``: the JSON payload stored at `path` under `key`, or ``build()`` written there atomically.

    A cache file whose key differs (new source files, new parser version) or that cannot be read is rebuilt.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp(), "c.json")
    >>> cached_json(path, key={"v": 1}, build=lambda: [1, 2])
    ([1, 2], False)
    >>> cached_json(path, key={"v": 1}, build=lambda: [3])
    ([1, 2], True)
    """
    from ..io import atomic_write_bytes

    path = Path(path)
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(stored, dict) and stored.get("key") == key and "data" in stored:
            return stored["data"], True
    except (OSError, ValueError):
        pass
    data = build()
    blob = json.dumps({"key": key, "data": data}, ensure_ascii=False, separators=(",", ":"))
    try:
        atomic_write_bytes(path, blob.encode("utf-8"))
    except OSError as e:                                  # a read-only cache costs speed, not the data
        warnings.warn(f"could not write the cache {path} ({e}); the data will be rebuilt next time", stacklevel=2)
    return data, False
