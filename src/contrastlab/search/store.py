"""Opening index folders: `open_index` (a `SearchIndex` of named collections, from any folder `contrastlab index`
wrote, including contrastlab 0.1's text and image-text formats) and `load_index` / `save_index` (one
`VectorIndex`, the folder a collection is kept in).

A folder is written into a temporary sibling folder and renamed into place, so a reader sees the old index or the
new one, never a mixture; every file is checked against the size and SHA-256 that meta.json records. The
temporary folders of a writer that was killed are removed by the next write or load
(`contrastlab.search.leftovers`). The files themselves are written and checked by `contrastlab.search.folders`;
this module builds the classes from them.

>>> import tempfile, pathlib, numpy as np
>>> from contrastlab.search.index import VectorIndex
>>> folder = pathlib.Path(tempfile.mkdtemp()) / "idx"
>>> save_index(VectorIndex.build(np.eye(2), ["a", "b"], texts=["x", "y"]), folder)
>>> loaded = load_index(folder)
>>> loaded.count, loaded.kind, loaded.texts
(2, 'exact', ['x', 'y'])
>>> open_index(folder)                    # one vector index opens as a text index of one collection
SearchIndex(texts=2, dim=2, queries=('text',))
"""
from __future__ import annotations

import os
from pathlib import Path

from .collections import Collection, SearchIndex, Thumbnails
from .folders import (FORMAT, FORMAT_VERSION, IMAGE_TEXT_FORMAT, SEARCH_FORMAT, IndexFolderError, index_format,
                      read_search_index, save_index)
from .index import VectorIndex

__all__ = ["save_index", "load_index", "IndexFolderError", "FORMAT", "FORMAT_VERSION", "SEARCH_FORMAT",
           "IMAGE_TEXT_FORMAT", "open_index", "index_format", "BACKENDS"]


def _open_milvus(path: Path, spec: dict):
    from .milvus import MilvusVectors
    return MilvusVectors.from_folder_record(path, spec)


#: How a collection kept outside the folder is opened again, by the "backend" its backend.json names.
BACKENDS = {"milvus": _open_milvus}


def load_index(path: str | os.PathLike) -> VectorIndex:
    """Read one vector-index folder written by `save_index`; raises IndexFolderError saying what is wrong."""
    return VectorIndex.load(path)


def _vectors(path: Path, name: str, parts):
    if parts[0] != "backend":
        return VectorIndex.from_parts(path / name, parts)
    spec = parts[1]
    backend = spec.get("backend") if isinstance(spec, dict) else None
    if backend not in BACKENDS:
        raise IndexFolderError(f"{path / name}: collection {name!r} is kept in backend {backend!r}, which this "
                               f"contrastlab does not know (it knows {', '.join(BACKENDS)})")
    return BACKENDS[backend](path / name, spec)


def open_index(path: str | os.PathLike) -> SearchIndex:
    """The `SearchIndex` of the folder `path` (every file checked against meta.json); IndexFolderError saying what
    is wrong, and to rebuild with `contrastlab index` where the folder cannot be read."""
    path = Path(path)
    queries, entries, meta = read_search_index(path)
    try:
        collections = []
        for e in entries:
            thumbs = None if e["thumbnails"] is None else Thumbnails(*e["thumbnails"])
            collections.append(Collection(e["name"], e["modality"], _vectors(path, e["name"], e["vectors"]),
                                          thumbnails=thumbs, text_field=e["text_field"]))
        return SearchIndex(collections, queries=queries, meta=meta)
    except ValueError as e:
        if isinstance(e, IndexFolderError):
            raise
        raise IndexFolderError(f"{path}: {e}; rebuild it with `contrastlab index`") from None
