"""One kind of search index: named collections in one embedding space.

A :class:`SearchIndex` holds one or more :class:`Collection` s -- "texts" (a corpus), "images" (with a PNG
thumbnail per row), "names" (an image-text run's captions) -- each with its ids, vectors, optional texts and its
own vector index (`VectorIndex`: FAISS exact up to 50k vectors, HNSW past it, recall measured at build time; or a
vector database, `contrastlab.search.milvus`). `queries` names what the index's embedder can embed: "text",
"image" or both (a raw vector can always be sent). A query of a modality searches one collection: the one named,
or by default a collection of the *other* modality when the index has one (a text finds images, an image finds
names: search across modalities), else one of its own. Text runs, image runs and image-text runs all build this
(`contrastlab.search.indexing.index_run`), save it in one folder format (`contrastlab.search.folders`) and answer
through the same code (`querying`, `api`).

>>> import numpy as np
>>> from contrastlab.search import VectorIndex
>>> texts = Collection("texts", "text", VectorIndex.build(np.eye(3), ["a", "b", "c"], texts=["x", "y", "z"]))
>>> index = SearchIndex([texts], queries=("text",))
>>> index.names, index.default_collection("text"), index.collection("texts").count
(('texts',), 'texts', 3)
>>> index.check_query("image")
Traceback (most recent call last):
...
ValueError: this index holds text embeddings only (queries: text): an image query cannot be answered
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

__all__ = ["MODALITIES", "QUERY_MODALITIES", "TEXT_FIELDS", "Thumbnails", "Collection", "SearchIndex"]

#: What the rows of a collection are.
MODALITIES = ("text", "image")
#: What a query can be besides a raw vector (in the order messages list them).
QUERY_MODALITIES = ("text", "image")
#: How a collection's texts are shown: "text" (a document, a caption) or "label" (an image's class name).
TEXT_FIELDS = ("text", "label")
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


class Thumbnails:
    """One PNG per row, back to back in `data`, with `offsets` (N + 1,) byte offsets (increasing from 0).

    >>> t = Thumbnails.from_pngs([b"\\x89PNG-a", b"\\x89PNG-bc"])
    >>> len(t), t[1]
    (2, b'\\x89PNG-bc')
    """

    def __init__(self, data: bytes, offsets):
        offsets = np.asarray(offsets)
        if (offsets.ndim != 1 or len(offsets) < 1 or offsets.dtype.kind not in "iu" or offsets[0] != 0
                or offsets[-1] != len(data) or (np.diff(offsets) <= 0).any()):
            raise ValueError(f"the thumbnails must be non-empty PNGs with increasing offsets from 0 to {len(data)}")
        self.data = bytes(data)
        self.offsets = offsets.astype(np.int64)

    @classmethod
    def from_pngs(cls, pngs: Sequence[bytes]) -> "Thumbnails":
        return cls(b"".join(pngs), np.cumsum([0] + [len(p) for p in pngs]))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, position: int) -> bytes:
        if isinstance(position, bool) or not isinstance(position, (int, np.integer)) or not 0 <= position < len(self):
            raise IndexError(f"`position` must be an int in [0, {len(self)}), got {position!r}")
        return self.data[self.offsets[position]:self.offsets[position + 1]]


class Collection:
    """A named set of embedded rows: `vectors` (a `VectorIndex`, or anything with its query surface: `ids`,
    `texts`, `position`, `count`, `dim`, `kind`, `meta`, `search`, `text_of`, `vectors_at`), what they are
    (`modality`: "text" or "image"), how their texts read (`text_field`: "text", or "label" for class names) and,
    for images, `thumbnails` (one PNG per row)."""

    def __init__(self, name: str, modality: str, vectors, *, thumbnails: Thumbnails | None = None,
                 text_field: str = "text"):
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"`name` must be lower-case letters, digits, '-' or '_' (starting with a letter, at "
                             f"most 64), got {name!r}")
        if modality not in MODALITIES:
            raise ValueError(f"`modality` must be one of {', '.join(MODALITIES)}, got {modality!r}")
        if text_field not in TEXT_FIELDS:
            raise ValueError(f"`text_field` must be one of {', '.join(TEXT_FIELDS)}, got {text_field!r}")
        if thumbnails is not None and len(thumbnails) != vectors.count:
            raise ValueError(f"collection {name!r} has {vectors.count} rows but {len(thumbnails)} thumbnails")
        self.name, self.modality, self.vectors = name, modality, vectors
        self.thumbnails, self.text_field = thumbnails, text_field

    # the query surface of the vectors, for callers that search a collection directly
    count = property(lambda self: self.vectors.count)
    dim = property(lambda self: self.vectors.dim)
    ids = property(lambda self: self.vectors.ids)
    texts = property(lambda self: self.vectors.texts)
    position = property(lambda self: self.vectors.position)
    kind = property(lambda self: self.vectors.kind)
    meta = property(lambda self: self.vectors.meta)

    def __len__(self) -> int:
        return self.count

    def search(self, queries, k: int, *, allowed_ids=None):
        return self.vectors.search(queries, k, allowed_ids=allowed_ids)

    def text_of(self, position: int) -> str | None:
        return self.vectors.text_of(position)

    def vectors_at(self, positions):
        return self.vectors.vectors_at(positions)

    def thumbnail(self, position: int) -> bytes:
        """The PNG bytes of row `position`'s thumbnail; ValueError when the collection keeps none."""
        if self.thumbnails is None:
            raise ValueError(f"collection {self.name!r} keeps no thumbnails")
        return self.thumbnails[position]

    def summary(self) -> str:
        recall = self.meta.get("recall")
        return (f"{self.count} {self.name} ({self.modality}, {self.kind}"
                + (f", recall@{self.meta['recall_k']} {recall:.3f}" if recall is not None else "") + ")")

    def __repr__(self) -> str:
        return (f"Collection({self.name!r}, modality={self.modality!r}, count={self.count}, kind={self.kind!r}"
                f"{', thumbnails' if self.thumbnails is not None else ''})")


class SearchIndex:
    """Named collections in one space of `dim` dimensions; `queries`: the modalities its embedder embeds ("text",
    "image"); `meta`: where it came from (the embedder's source and checkpoint step, the data, sizes, times).
    Save with `save` (see `contrastlab.search.folders`), open with `contrastlab.search.open_index`."""

    def __init__(self, collections: Sequence[Collection], *, queries: Sequence[str], meta: dict | None = None):
        collections = list(collections)
        if not collections:
            raise ValueError("`collections` must hold at least one collection, got none")
        names = [c.name for c in collections]
        if len(set(names)) != len(names):
            raise ValueError(f"collection names must be unique, got {names}")
        dims = {c.name: c.dim for c in collections}
        if len(set(dims.values())) != 1:
            raise ValueError(f"the collections must share one space, got dimensions {dims}")
        queries = tuple(queries)
        bad = [q for q in queries if q not in QUERY_MODALITIES]
        if bad:
            raise ValueError(f"`queries` must name modalities among {', '.join(QUERY_MODALITIES)}, got {bad[0]!r}")
        self.collections = {c.name: c for c in collections}
        self.queries = tuple(q for q in QUERY_MODALITIES if q in queries)
        self.meta = dict(meta or {})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.collections)

    @property
    def dim(self) -> int:
        return next(iter(self.collections.values())).dim

    @property
    def count(self) -> int:
        """Rows in all collections together."""
        return sum(c.count for c in self.collections.values())

    @property
    def modalities(self) -> tuple[str, ...]:
        """What its queries may be ("text", "image"; a raw vector always)."""
        return self.queries

    def describe(self) -> str:
        """Its modalities and collections, for messages: "queries: image, text; collections: images, names"."""
        return f"queries: {', '.join(self.queries) or 'vectors only'}; collections: {', '.join(self.names)}"

    def collection(self, name: str) -> Collection:
        if name not in self.collections:
            raise ValueError(f"`collection` must be one of {', '.join(map(repr, self.names))} (this index's "
                             f"collections), got {name!r}")
        return self.collections[name]

    def check_query(self, modality: str) -> None:
        """ValueError naming the index's modalities when its embedder cannot embed a `modality` query."""
        if modality not in QUERY_MODALITIES:
            raise ValueError(f"`modality` must be one of {', '.join(QUERY_MODALITIES)}, got {modality!r}")
        if modality not in self.queries:
            what = " and ".join(self.queries) if self.queries else "no"
            listed = ", ".join(self.queries) or "none"
            article = "an" if modality == "image" else "a"
            raise ValueError(f"this index holds {what} embeddings only (queries: {listed}): {article} {modality} "
                             f"query cannot be answered")

    def default_collection(self, modality: str | None) -> str:
        """The collection a query of `modality` ("text", "image"; None: a raw vector) searches unless it names
        one: the first of another modality (across modalities), else the first of its own, else the first."""
        kinds = [c.modality for c in self.collections.values()]
        if modality is not None:
            for c, kind in zip(self.collections.values(), kinds):
                if kind != modality:
                    return c.name
        return self.names[0]

    def close(self) -> None:
        """Let go of collections kept in a vector database (their connections); FAISS ones need nothing."""
        for c in self.collections.values():
            close = getattr(c.vectors, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> "SearchIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def save(self, path) -> None:
        """Write to the folder `path` atomically (see `contrastlab.search.folders.save_search_index`)."""
        from .folders import save_search_index
        save_search_index(self, path)

    def summary(self) -> str:
        return f"{', '.join(c.summary() for c in self.collections.values())}; dim {self.dim}"

    def __repr__(self) -> str:
        inner = ", ".join(f"{c.name}={c.count}" for c in self.collections.values())
        return f"SearchIndex({inner}, dim={self.dim}, queries={self.queries})"
