"""Search over an image run (SimCLR, BYOL, ... on images): image queries find similar images of the run's data.

`load_image_run_embedder(RUN)` gives the run's evaluation feature (the encoder's h, not the projection head) with
`prepare_query_image(bytes)`: a PNG / JPEG query brought to the run's (C, H, W) -- resized when its size differs
(and saying so), refused when it is a colour image for a grayscale run. `build_image_index` embeds a dataset's
images into an image-only `ImageTextIndex` (one collection, "images"; the texts are the class names when the data
has labels) with a PNG thumbnail per image. `contrastlab index RUN --images SPEC --out INDEX` builds it.

>>> import numpy as np
>>> class Mean:                                      # a tiny image embedder: per-channel brightness + 1
...     dim, image_shape, source = 2, (1, 4, 4), "toy"
...     def encode_images(self, x, *, batch_size=256):
...         z = np.stack([np.asarray(x, np.float32).mean((1, 2, 3)), np.ones(len(x))], 1)
...         return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)
>>> x = np.stack([np.full((1, 4, 4), v, np.uint8) for v in (0, 10, 200, 210)])      # (N, C, H, W) = (4, 1, 4, 4)
>>> index = build_image_index(Mean(), x, ["a", "b", "c", "d"], ["dark", "dark", "light", "light"])
>>> index.targets, index.modalities
(('images',), ('image',))
>>> index.collection("images").search(Mean().encode_images(x[2:3]), 2)[1]
[['c', 'd']]
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from ..runs.embedders import ImageEmbedder
from .multimodal import (MAX_IMAGE_PIXELS, ImageDecodeError, ImageTextIndex, _thumbnails, decode_image, encode_png,
                         fit_image)

__all__ = ["ImageQueryEmbedder", "load_image_run_embedder", "build_image_index", "GRAY_TOLERANCE"]

#: A colour (RGB) query is taken as grayscale by a 1-channel run when its channels differ by at most this much
#: anywhere (JPEG's chroma noise on a gray picture), else refused.
GRAY_TOLERANCE = 8


class ImageQueryEmbedder(ImageEmbedder):
    """An image run's evaluation feature (see `ImageEmbedder`) plus the decoding of query images.

    `step`: the checkpoint step the weights come from (an index records it; a query to an index built from
    another step of the run is refused, see `contrastlab.search.querying.open_for_queries`)."""

    def __init__(self, method, *, image_shape: tuple[int, int, int], source: str, step: int | None = None,
                 max_pixels: int = MAX_IMAGE_PIXELS):
        super().__init__(method, image_shape=image_shape, source=source)
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
            raise ValueError(f"`max_pixels` must be a positive int, got {max_pixels!r}")
        self.step, self.max_pixels = step, max_pixels

    def prepare_query_image(self, data: bytes) -> tuple[np.ndarray, list[str]]:
        """PNG / JPEG bytes -> ((C, H, W) uint8 at the run's shape, notes). A different size is resized (shorter
        side scaled, centre crop: how `load_images(..., image_size=)` resizes) and a note says so; a colour image
        for a 1-channel run is an ImageDecodeError (422); too many pixels a 413 (see `decode_image`)."""
        im = decode_image(data, max_pixels=self.max_pixels)
        c, h, w = self.image_shape
        notes = []
        if im.size != (w, h):
            notes.append(f"the image was resized from {im.size[0]}x{im.size[1]} to {w}x{h} pixels (the run's "
                         f"image size): shorter side scaled, centre crop")
        rgb = fit_image(im, (h, w), fit="crop", resample="bilinear")                     # (3, H, W)
        if c == 3:
            return rgb, notes
        spread = int((rgb.max(0).astype(np.int16) - rgb.min(0)).max())
        if spread > GRAY_TOLERANCE:
            raise ImageDecodeError(f"is a colour image (3 channels, differing by up to {spread} levels) but the run "
                                   f"takes 1-channel (grayscale) images: convert it to grayscale first")
        gray = np.rint(rgb.astype(np.float32).mean(0, keepdims=True)).astype(np.uint8)   # (1, H, W)
        return gray, notes

    def prepare_image(self, data: bytes) -> np.ndarray:
        """`prepare_query_image` without the notes. Shape: -> (C, H, W) uint8."""
        return self.prepare_query_image(data)[0]


def load_image_run_embedder(run_dir) -> ImageQueryEmbedder:
    """The evaluation feature of an image run (`contrastlab.runs.load_run`, on the CPU), ready for queries."""
    from ..devices import CPU
    from ..runs import load_run
    run = load_run(run_dir, device=CPU)
    if run.modality != "image":
        raise ValueError(f"{run.path} is not an image run (its modality is {run.modality!r})")
    base = run.embedder()                                                  # an ImageEmbedder
    return ImageQueryEmbedder(run.method, image_shape=base.image_shape, source=base.source, step=run.step)


def _rgb(x: np.ndarray) -> np.ndarray:
    """(N, 1 or 3, H, W) uint8 -> (N, 3, H, W): a gray channel repeated (what a PNG thumbnail stores)."""
    return np.repeat(x, 3, axis=1) if x.shape[1] == 1 else x


def build_image_index(embedder, images, ids: Sequence[str], labels: Sequence[str | None] | None = None, *,
                      kind: str = "auto", batch_size: int = 256, progress: bool = False, source: str | None = None,
                      meta: dict | None = None) -> ImageTextIndex:
    """Embed `images` (N, C, H, W) uint8 (an array, a tensor or a streamed source, read `batch_size` at a time)
    with `embedder.encode_images` and index them under `ids`, with `labels` (N class names or None) as their
    texts and a PNG thumbnail each (at most MAX_THUMBNAIL_SIZE a side). `kind`: see `VectorIndex.build`.
    Returns an image-only `ImageTextIndex` (collection "images") whose `meta` holds the embedder's source and
    checkpoint step, the image shape, the embedding seconds and `meta`."""
    from .index import VectorIndex
    shape = tuple(int(s) for s in images.shape)
    n = shape[0]
    want = tuple(getattr(embedder, "image_shape", shape[1:]))
    if len(shape) != 4 or shape[1:] != want:
        raise ValueError(f"`images` must be (N, {', '.join(map(str, want))}) (the run's image shape), got {shape}")
    if n == 0:
        raise ValueError("`images` must hold at least one image, got none")
    ids = list(ids)
    labels = None if labels is None else list(labels)
    if len(ids) != n or (labels is not None and len(labels) != n):
        raise ValueError(f"`ids` and `labels` must have one entry per image ({n}), got {len(ids)} and "
                         f"{len(labels) if labels is not None else None}")
    from tqdm.auto import tqdm
    pngs: list[bytes] = []
    thumb_size = None
    z = np.empty((n, embedder.dim), dtype=np.float32)                                   # (N, D)
    start = time.perf_counter()
    with tqdm(total=n, unit="image", desc="images", disable=not progress) as bar:
        for i in range(0, n, batch_size):
            x = np.ascontiguousarray(np.asarray(images[i:i + batch_size]))            # (b, C, H, W)
            chunk = np.asarray(embedder.encode_images(x, batch_size=batch_size), dtype=np.float32)
            if chunk.shape != (len(x), embedder.dim):
                raise ValueError(f"the embedder returned shape {chunk.shape} for {len(x)} images, expected "
                                 f"({len(x)}, {embedder.dim})")
            z[i:i + len(x)] = chunk
            thumbs = _thumbnails(_rgb(x), len(x))                                     # (b, 3, h, w)
            thumb_size = list(thumbs.shape[2:])
            pngs.extend(encode_png(t) for t in thumbs)
            bar.update(len(x))
    seconds = time.perf_counter() - start
    source = source if source is not None else getattr(embedder, "source", None)
    collection = VectorIndex.build(z, ids, texts=labels, kind=kind, embedder=source)
    info = {"modality": "image", "embedder": source, "run_step": getattr(embedder, "step", None),
            "image_shape": list(want), "thumbnail_size": thumb_size, "embed_seconds": round(seconds, 3),
            "has_labels": labels is not None, **(meta or {})}
    return ImageTextIndex(collection, None, b"".join(pngs), np.cumsum([0] + [len(p) for p in pngs]), info)
