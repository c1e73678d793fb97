"""Query a saved index from Python: open it with the embedder it was built with (`open_for_queries`), search it
with a text or an image file (`search_folder`), or serve it over HTTP (`serve_folder`). `contrastlab search` and
`contrastlab serve` call these; errors are raised with messages that name the setting and the value got.

>>> import tempfile
>>> from pathlib import Path
>>> from contrastlab.search import VectorIndex
>>> class Letters:                                   # a tiny embedder: counts of a, b, c
...     dim = 3
...     def encode(self, texts, *, batch_size=256):
...         return np.array([[t.count(c) + 0.1 for c in "abc"] for t in texts], dtype=np.float32)
>>> folder = Path(tempfile.mkdtemp()) / "idx"
>>> VectorIndex.build(Letters().encode(["aaa", "bbb"]), ["1", "2"], texts=["aaa", "bbb"]).save(folder)
>>> [(d, t) for _, d, t in search_folder(folder, "b", k=1, embedder=Letters())]
[('2', 'bbb')]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .indexing import load_run_embedder

__all__ = ["MAX_IMAGE_FILE", "open_for_queries", "search_folder", "embed_image_file", "serve_folder"]

#: The largest `--image` query file read, in bytes.
MAX_IMAGE_FILE = 64 << 20


def open_for_queries(path, embedder=None):
    """The index folder `path` (text or image-text) and the embedder for its queries: `embedder`, else the one
    its meta.json records. Returns (index, embedder)."""
    from .store import open_index
    index = open_index(path)
    if embedder is None:
        source = index.meta.get("embedder")
        if not source:
            raise ValueError(f"{path} records no embedder (meta.json 'embedder' is empty): it was not built by "
                             f"`contrastlab index`, so text queries cannot be embedded")
        embedder = load_run_embedder(source)
    if embedder.dim != index.dim:
        raise ValueError(f"the embedder makes {embedder.dim}-dimensional vectors but {path} holds "
                         f"{index.dim}-dimensional ones")
    return index, embedder


def embed_image_file(path, embedder) -> np.ndarray:
    """The image file `path` (PNG or JPEG) embedded by the image tower. Shape: (1, D)."""
    from .multimodal import ImageDecodeError
    if not hasattr(embedder, "prepare_image"):
        raise ValueError("the index's embedder has no image tower: it cannot embed --image")
    if not Path(path).is_file():
        raise FileNotFoundError(f"--image {path} does not exist or is not a file")
    if Path(path).stat().st_size > MAX_IMAGE_FILE:
        raise ValueError(f"--image {path} is larger than {MAX_IMAGE_FILE >> 20} MiB")
    try:
        pixels = embedder.prepare_image(Path(path).read_bytes())                    # (3, H, W) uint8
    except ImageDecodeError as e:
        raise ValueError(f"--image {path} {e}") from None
    return np.asarray(embedder.encode_images(pixels[None]), dtype=np.float32)


def search_folder(path, query: str | None = None, *, image=None, target: str | None = None, k: int = 10,
                  embedder=None) -> list[tuple[float, str, str | None]]:
    """The `k` best (score, id, text) of the index folder `path` for a query text, or for an image file
    (`image`: an image-text index). An image-text index searches `target` ("images" or "names"; default images
    for a text, names for an image)."""
    from .multimodal import ImageTextIndex
    if (query is None) == (image is None):
        raise ValueError("give a query text or --image FILE" + (", not both" if image is not None else ""))
    if query is not None and not query.strip():
        raise ValueError("the query must not be empty")
    index, embedder = open_for_queries(path, embedder)
    if isinstance(index, ImageTextIndex):
        target = target or ("names" if image is not None else "images")
        vector = (embed_image_file(image, embedder) if image is not None
                  else np.asarray(embedder.encode([query], batch_size=1), dtype=np.float32))        # (1, D)
        collection = index.collection(target)
    else:
        if image is not None or target is not None:
            raise ValueError(f"--image and --target are for an image-text index; {path} is a text index")
        vector = np.asarray(embedder.encode([query], batch_size=1), dtype=np.float32)               # (1, D)
        collection = index
    scores, ids = collection.search(vector, k)
    return [(s, d, collection.text_of(collection.position[d])) for s, d in zip(scores[0].tolist(), ids[0])]


def serve_folder(path, *, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 64, max_wait_ms: float = 2.0,
                 max_image_bytes: int = 512 * 1024, embedder=None) -> None:
    """Serve the index folder `path` over HTTP (POST /search, GET /health) until Ctrl-C."""
    from .server import serve_index
    index, embedder = open_for_queries(path, embedder)
    serve_index(index, embedder, host=host, port=port, max_batch=max_batch, max_wait_ms=max_wait_ms,
                max_image_bytes=max_image_bytes)
