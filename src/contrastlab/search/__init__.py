"""Nearest-neighbour search over embeddings: one index of named collections (`SearchIndex`: "texts", "images"
with thumbnails, "names"; each a FAISS `VectorIndex`, or a Milvus collection past one machine), built from any run
(`indexing.index_run`: a text run's corpus, an image run's images, an image-text run's own images and names),
opened with `open_index`, queried with a text, an image or a vector (`querying`), and served over HTTP with
micro-batching (`create_search_app`, `serve_index`). `load_embedder` gives what a run or a model spec embeds with.

>>> import numpy as np
>>> from contrastlab.search import VectorIndex
>>> VectorIndex.build(np.eye(4), ["a", "b", "c", "d"]).search(np.eye(4)[:1], 1)[1]
[['a']]
"""
from __future__ import annotations


__all__ = ["VectorIndex", "SearchIndex", "Collection", "exact_top_k", "recall_at_k", "tie_aware_recall",
           "IndexFolderError", "load_index", "save_index", "open_index", "index_run", "create_search_app",
           "MicroBatcher", "serve_index", "ImageTextEmbedder", "load_image_text_embedder", "load_embedder",
           "load_image_run_embedder"]


# Everything is imported on first use: faiss (and fastapi / uvicorn) only load when search is used. Importing faiss
# in a training process makes torchrun's restarted processes hang while joining the process group (found with
# `--max-restarts`).
_LAZY = {"VectorIndex": ".index", "exact_top_k": ".recall", "recall_at_k": ".recall", "tie_aware_recall": ".recall",
         "IndexFolderError": ".store", "load_index": ".store", "save_index": ".store", "open_index": ".store",
         "SearchIndex": ".collections", "Collection": ".collections", "index_run": ".indexing",
         "ImageTextEmbedder": ".multimodal", "load_image_text_embedder": ".multimodal", "load_embedder": ".embedders",
         "load_image_run_embedder": ".images"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
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
