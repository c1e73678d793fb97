"""Text embeddings from a trained run (or a frozen / your own model) for indexing and search."""
from .embedder import Embedder, load_embedder

__all__ = ["Embedder", "load_embedder"]
