"""Nearest-neighbour search over embeddings: a FAISS index, index building and querying as Python functions
(`indexing`, `querying`; the `contrastlab index / search / serve` commands call them), `load_embedder` (what a run
or a model spec embeds with) and an HTTP search API with micro-batching; across modalities with an image-text run
(`ImageTextIndex`: text -> images, image -> names); image -> images with an image run (`build_image_index`: an
`ImageTextIndex` of images only).

>>> import numpy as np
>>> from contrastlab.search import VectorIndex
>>> VectorIndex.build(np.eye(4), ["a", "b", "c", "d"]).search(np.eye(4)[:1], 1)[1]
[['a']]
"""
from __future__ import annotations


__all__ = ["VectorIndex", "exact_top_k", "recall_at_k", "tie_aware_recall", "IndexFolderError", "load_index",
           "save_index", "create_search_app", "MicroBatcher", "serve_index", "ImageTextIndex", "ImageTextEmbedder",
           "build_image_text_index", "load_image_text_embedder", "load_image_text_index", "open_index",
           "load_embedder", "build_image_index", "load_image_run_embedder"]


# Everything is imported on first use: faiss (and fastapi / uvicorn) only load when search is used. Importing faiss
# in a training process makes torchrun's restarted processes hang while joining the process group (found with
# `--max-restarts`).
_LAZY = {"VectorIndex": ".index", "exact_top_k": ".recall", "recall_at_k": ".recall", "tie_aware_recall": ".recall",
         "IndexFolderError": ".store", "load_index": ".store", "save_index": ".store",
         "load_image_text_index": ".store", "open_index": ".store", "ImageTextIndex": ".multimodal",
         "ImageTextEmbedder": ".multimodal", "build_image_text_index": ".multimodal",
         "load_image_text_embedder": ".multimodal", "load_embedder": ".embedders", "build_image_index": ".images",
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
