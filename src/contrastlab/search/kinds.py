"""The kinds of index `VectorIndex.build` makes (a module of its own, so the CLI can list them without faiss)."""

KINDS = ("auto", "exact", "hnsw", "ivf")
