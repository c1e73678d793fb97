"""Query a saved index from Python: open it with the embedder it was built with (`open_for_queries`), search it
with a text or an image file (`search_folder`), or serve it over HTTP (`serve_folder`). `contrastlab search` and
`contrastlab serve` call these; errors are raised with messages that name the setting and the value got.

>>> import tempfile
>>> from pathlib import Path
>>> from contrastlab.search import Collection, SearchIndex, VectorIndex
>>> class Letters:                                   # a tiny embedder: counts of a, b, c
...     dim = 3
...     def encode(self, texts, *, batch_size=256):
...         return np.array([[t.count(c) + 0.1 for c in "abc"] for t in texts], dtype=np.float32)
>>> folder = Path(tempfile.mkdtemp()) / "idx"
>>> texts = VectorIndex.build(Letters().encode(["aaa", "bbb"]), ["1", "2"], texts=["aaa", "bbb"])
>>> SearchIndex([Collection("texts", "text", texts)], queries=("text",)).save(folder)
>>> [(d, t) for _, d, t in search_folder(folder, "b", k=1, embedder=Letters())]
[('2', 'bbb')]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .indexing import load_run_embedder
from .neighbours import search_excluding_self

__all__ = ["MAX_IMAGE_FILE", "open_for_queries", "query_vector", "search_folder", "embed_image_file", "serve_folder"]

#: The largest `--image` query file read, in bytes.
MAX_IMAGE_FILE = 64 << 20


def open_for_queries(path, embedder=None):
    """The `SearchIndex` of the folder `path` and the embedder for its queries: `embedder`, else the one its
    meta.json records. Returns (index, embedder). An index built from another checkpoint of its run than
    the one there now is refused (its vectors and the queries' would come from different weights)."""
    from .store import open_index
    index = open_index(path)
    try:
        return index, _embedder_for(index, path, embedder)
    except BaseException:
        index.close()
        raise


def _embedder_for(index, path, embedder):
    if embedder is None:
        source = index.meta.get("embedder")
        if not source:
            raise ValueError(f"{path} records no embedder (meta.json 'embedder' is empty): it was not built by "
                             f"`contrastlab index`, so text queries cannot be embedded")
        embedder = load_run_embedder(source)
        built, now = index.meta.get("run_step"), getattr(embedder, "step", None)
        if built is not None and now is not None and built != now:
            raise ValueError(f"{path} was built from {source} at step {built}, but that run's checkpoint is now at "
                             f"step {now}: rebuild the index with `contrastlab index {source} "
                             + (f"--images {index.meta['data']} " if index.meta.get("has_labels") is not None else "")
                             + f"--out {path}`")
    if embedder.dim != index.dim:
        raise ValueError(f"the embedder makes {embedder.dim}-dimensional vectors but {path} holds "
                         f"{index.dim}-dimensional ones")
    return embedder


def embed_image_file(path, embedder, *, notes: list | None = None) -> np.ndarray:
    """The image file `path` (PNG or JPEG) embedded by the embedder's image tower / feature. Shape: (1, D).
    `notes`: a list that hears what was done to the image (resized ...)."""
    from .multimodal import ImageDecodeError
    if not hasattr(embedder, "prepare_image"):
        raise ValueError("the index's embedder has no image tower: it cannot embed --image")
    if not Path(path).is_file():
        raise FileNotFoundError(f"--image {path} does not exist or is not a file")
    if Path(path).stat().st_size > MAX_IMAGE_FILE:
        raise ValueError(f"--image {path} is larger than {MAX_IMAGE_FILE >> 20} MiB")
    try:
        data = Path(path).read_bytes()
        if hasattr(embedder, "prepare_query_image"):
            pixels, said = embedder.prepare_query_image(data)                           # (C, H, W) uint8
        else:
            pixels, said = embedder.prepare_image(data), []
    except ImageDecodeError as e:
        raise ValueError(f"--image {path} {e}") from None
    if notes is not None:
        notes.extend(said)
    return np.asarray(embedder.encode_images(pixels[None]), dtype=np.float32)


def query_vector(index, embedder, *, query: str | None = None, image=None, vector=None,
                 notes: list | None = None, where: str = "the index") -> tuple[str | None, np.ndarray]:
    """(modality, (1, D) float32) of exactly one of a text `query`, an `image` file and a raw `vector` (D,),
    after checking that the index takes that modality (a ValueError naming `where` and the modalities it has)."""
    given = [name for name, v in (("query", query), ("image", image), ("vector", vector)) if v is not None]
    if len(given) != 1:
        raise ValueError("give a query text or --image FILE" + (", not both" if len(given) == 2 else
                                                                ", not all three" if given else ""))
    if query is not None:
        if not query.strip():
            raise ValueError("the query must not be empty")
        _check(index, "text", "give --image FILE", where)
        return "text", np.asarray(embedder.encode([query], batch_size=1), dtype=np.float32)          # (1, D)
    if image is not None:
        _check(index, "image", "give a text query", where)
        return "image", embed_image_file(image, embedder, notes=notes)                               # (1, D)
    v = np.asarray(vector, dtype=np.float32).reshape(1, -1)                                          # (1, D)
    if v.shape[1] != index.dim:
        raise ValueError(f"the vector must have {index.dim} numbers (the index dimension), got {v.shape[1]}")
    return None, v


def _check(index, modality: str, instead: str, where: str) -> None:
    try:
        index.check_query(modality)
    except ValueError as e:
        raise ValueError(f"{where}: {e}; {instead}") from None


def search_folder(path, query: str | None = None, *, image=None, vector=None, collection: str | None = None,
                  k: int = 10, embedder=None, exclude_self: bool = False,
                  notes: list | None = None) -> list[tuple[float, str, str | None]]:
    """The `k` best (score, id, text) of the index folder `path` for a query text, an image file (`image`) or a
    raw `vector`, from `collection` (default: `SearchIndex.default_collection`, across modalities where the
    index has another: a text finds images, an image finds names). The text is a document's text, an image's
    name or its class label. `exclude_self`: leave out the query itself (see `search_excluding_self`). `notes`: a
    list that hears what was done to the query image (resized ...)."""
    if query is not None and not query.strip():
        raise ValueError("the query must not be empty")
    index, embedder = open_for_queries(path, embedder)
    with index:
        modality, v = query_vector(index, embedder, query=query, image=image, vector=vector, notes=notes,
                                   where=str(path))
        name = collection if collection is not None else index.default_collection(modality)
        try:
            target = index.collection(name)
        except ValueError:
            raise ValueError(f"--collection {name}: {path} has the collections {', '.join(index.names)} "
                             f"({index.describe()})") from None
        if exclude_self:
            scores, ids = search_excluding_self(target, v, k)
        else:
            scores, ids = target.search(v, k)
        return [(s, d, target.text_of(target.position[d])) for s, d in zip(scores[0].tolist(), ids[0])]


def serve_folder(path, *, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 64, max_wait_ms: float = 2.0,
                 max_image_bytes: int = 512 * 1024, embedder=None) -> None:
    """Serve the index folder `path` over HTTP (POST /search, GET /health) until Ctrl-C."""
    from .server import serve_index
    index, embedder = open_for_queries(path, embedder)
    with index:
        serve_index(index, embedder, host=host, port=port, max_batch=max_batch, max_wait_ms=max_wait_ms,
                    max_image_bytes=max_image_bytes)
