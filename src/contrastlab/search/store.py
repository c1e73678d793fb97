"""Saving and loading indexes as folders: `save_index` / `load_index` (a `VectorIndex`),
`save_image_text_index` / `load_image_text_index` (an `ImageTextIndex`: an image-text run's images and names, or an
image run's images alone) and `open_index` (whichever a folder holds).

The folder holds `index.faiss` (the faiss index), `docs.jsonl` (one {"id", "text"} per line, in index order) and
`meta.json` (format, dim, count, kind, search parameters, recall, embedder source, build time, contrastlab version,
the size and SHA-256 of the two data files). It is written into a temporary sibling folder and renamed into place,
so a reader sees the old index or the new one, never a mixture. The temporary folders of a writer that was
killed are removed by the next write or load (`contrastlab.search.leftovers`). The files themselves are written
and checked by `contrastlab.search.folders`; this module builds the index classes from them.

>>> import tempfile, pathlib, numpy as np
>>> from contrastlab.search.index import VectorIndex
>>> folder = pathlib.Path(tempfile.mkdtemp()) / "idx"
>>> save_index(VectorIndex.build(np.eye(2), ["a", "b"], texts=["x", "y"]), folder)
>>> loaded = load_index(folder)
>>> loaded.count, loaded.kind, loaded.texts
(2, 'exact', ['x', 'y'])
"""
from __future__ import annotations

import os
from pathlib import Path

from .folders import (FORMAT, FORMAT_VERSION, IMAGE_TEXT_FORMAT, IndexFolderError, index_format, read_image_text_index,
                      save_image_text_index, save_index)
from .index import VectorIndex
from .multimodal import ImageTextIndex

__all__ = ["save_index", "load_index", "IndexFolderError", "FORMAT", "FORMAT_VERSION", "IMAGE_TEXT_FORMAT",
           "save_image_text_index", "load_image_text_index", "open_index", "index_format"]


def load_index(path: str | os.PathLike) -> VectorIndex:
    """Read an index folder written by `save_index`; raises IndexFolderError saying what is wrong."""
    return VectorIndex.load(path)


def load_image_text_index(path: str | os.PathLike) -> ImageTextIndex:
    """Read a folder written by `save_image_text_index` (every file checked against the checksums in
    meta.json); raises IndexFolderError saying what is wrong."""
    path = Path(path)
    parts, blob, offsets, meta = read_image_text_index(path)
    collections = {t: None if p is None else VectorIndex.from_parts(path / t, p) for t, p in parts.items()}
    try:
        return ImageTextIndex(collections["images"], collections["names"], blob, offsets, meta)
    except ValueError as e:
        raise IndexFolderError(f"{path}: {e}") from None


def open_index(path: str | os.PathLike) -> VectorIndex | ImageTextIndex:
    """A `VectorIndex` or an `ImageTextIndex`, whichever the folder holds."""
    if index_format(path) == IMAGE_TEXT_FORMAT:
        return load_image_text_index(path)
    return load_index(path)
