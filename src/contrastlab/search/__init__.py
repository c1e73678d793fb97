"""Nearest-neighbour search over embeddings: a FAISS index, the `index` / `search` / `serve` commands and an HTTP
search API with micro-batching.

>>> import numpy as np
>>> from contrastlab.search import VectorIndex
>>> VectorIndex.build(np.eye(4), ["a", "b", "c", "d"]).search(np.eye(4)[:1], 1)[1]
[['a']]
"""
from __future__ import annotations

from .index import VectorIndex
from .recall import exact_top_k, recall_at_k, tie_aware_recall
from .store import IndexFolderError, load_index, save_index

__all__ = ["VectorIndex", "exact_top_k", "recall_at_k", "tie_aware_recall", "IndexFolderError", "load_index",
           "save_index", "create_search_app", "MicroBatcher", "serve_index"]


def __getattr__(name):                      # the web parts import fastapi/uvicorn only when asked for
    if name == "create_search_app":
        from .api import create_search_app
        return create_search_app
    if name == "MicroBatcher":
        from .batching import MicroBatcher
        return MicroBatcher
    if name == "serve_index":
        from .server import serve_index
        return serve_index
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
