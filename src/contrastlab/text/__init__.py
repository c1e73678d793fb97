"""Text embedders (strings in, unit vectors out) and hard-negative mining; `contrastlab.search.load_embedder` loads
one from a run directory or a model spec."""
from .embedder import Embedder

__all__ = ["Embedder"]
