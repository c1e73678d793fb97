"""Search across modalities with an image-text (two-tower, CLIP) run: a text query finds images, an image query
finds names.

An :class:`ImageTextIndex` holds two collections embedded into the run's shared space: the dataset's images (by
the image tower; id: the dataset id, text: the image's name) and their names (by the text tower; one entry per
distinct name, id: the first image with that name), plus a small PNG thumbnail per image. `contrastlab index RUN
--out INDEX` builds it from an image-text run (no `--corpus`); `contrastlab search` and `contrastlab serve` answer
text queries with images and image queries with names.

>>> import numpy as np
>>> from contrastlab.search import VectorIndex
>>> images = VectorIndex.build(np.eye(3), ["a", "b", "c"], texts=["cat", "dog", "cow"])      # (N, D) = (3, 3)
>>> names = VectorIndex.build(np.eye(3), ["a", "b", "c"], texts=["cat", "dog", "cow"])
>>> pngs = [encode_png(np.full((3, 4, 4), v, np.uint8)) for v in (0, 128, 255)]
>>> index = ImageTextIndex(images, names, b"".join(pngs), np.cumsum([0] + [len(p) for p in pngs]), {})
>>> index.collection("names").search(np.array([[0.0, 1.0, 0.0]]), 1)[1]
[['b']]
>>> decode_png(index.thumbnail(2))[:, 0, 0].tolist()             # (3, H, W) uint8, as stored
[255, 255, 255]

This module loads faiss only when it needs it (`load_embedder` routes image-text runs here).
"""
from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..rundir import RunDir
from ..runs.embedders import TwoTowerEmbedder

__all__ = ["TARGETS", "ImageTextEmbedder", "load_image_text_embedder", "is_image_text_run", "ImageTextIndex",
           "build_image_text_index", "ImageDecodeError", "decode_image", "fit_image", "encode_png", "decode_png",
           "MAX_IMAGE_PIXELS", "MAX_THUMBNAIL_SIZE", "QUERY_FIT"]

#: The two collections of an image-text index, in the order they are stored.
TARGETS = ("images", "names")
#: The most pixels (width x height) a query image may have; larger ones are refused before they are decoded.
MAX_IMAGE_PIXELS = 2048 * 2048
#: Thumbnails are at most this many pixels on a side (the dataset images, shrunk if they are larger).
MAX_THUMBNAIL_SIZE = 64
#: How a query image is brought to the run's square image size, by dataset: "pad" (onto a white square, then
#: resize: how the emoji were rendered) or "crop" (shorter side, centre crop: how `captions:` folders are read),
#: and the resampling filter the dataset used. Datasets not listed: ("crop", "bilinear").
QUERY_FIT = {"emoji": ("pad", "lanczos")}
_FORMATS = ("PNG", "JPEG")


def _build(*args, **kwargs):
    from .index import VectorIndex
    return VectorIndex.build(*args, **kwargs)


# ---------------------------------------------------------------------------------------------------- images
class ImageDecodeError(ValueError):
    """Bytes that are not a usable image: the message completes a sentence that starts with what was given
    ("'image' ...", "--image FILE ..."); `status` is the HTTP status to answer with (413: too large)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def _pil():
    from PIL import Image, ImageOps
    return Image, ImageOps


def decode_image(data: bytes, *, max_pixels: int = MAX_IMAGE_PIXELS, formats: Sequence[str] = _FORMATS):
    """PNG or JPEG bytes -> an RGB `PIL.Image` (EXIF orientation applied, transparency composited on white).

    The size is checked from the header before any pixel is decoded (`max_pixels`), so a small file that would
    decode to a huge image is refused cheaply.

    >>> decode_image(encode_png(np.zeros((3, 2, 5), np.uint8))).size
    (5, 2)
    >>> decode_image(b"GIF89a...")
    Traceback (most recent call last):
    ...
    contrastlab.search.multimodal.ImageDecodeError: must be a PNG or JPEG image, got GIF
    """
    from PIL import UnidentifiedImageError
    Image, ImageOps = _pil()
    if not isinstance(data, (bytes, bytearray, memoryview)) or not len(data):
        raise ImageDecodeError("is empty: it must hold a PNG or JPEG file")
    try:
        im = Image.open(io.BytesIO(bytes(data)), formats=list(formats))
    except Image.DecompressionBombError as e:
        raise ImageDecodeError(f"is too large to decode ({e})", 413) from None
    except UnidentifiedImageError:
        raise _unidentified(data, formats) from None
    except Exception as e:                     # what a malformed header raises
        raise ImageDecodeError(f"is not a readable {' or '.join(formats)} image ({type(e).__name__}: {e})") \
            from None
    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise ImageDecodeError(f"is too large: {w}x{h} = {w * h} pixels, at most {max_pixels} are accepted",
                                   413)
        try:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode.startswith("I"):                                   # 16-bit gray -> 8-bit
                wide = np.asarray(im, dtype=np.float64)
                im = Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8), "L")
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            return im.convert("RGB")
        except Image.DecompressionBombError as e:
            raise ImageDecodeError(f"is too large to decode ({e})", 413) from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ImageDecodeError(f"could not be decoded: {type(e).__name__}: {e} (a truncated or corrupt "
                                   f"{im.format or 'image'} file?)") from None


def _unidentified(data: bytes, formats) -> ImageDecodeError:
    head = bytes(data[:8])
    other = {b"GIF8": "GIF", b"RIFF": "WebP", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}
    for magic, name in other.items():
        if head.startswith(magic) and name.upper() not in formats:
            return ImageDecodeError(f"must be a {' or '.join(formats)} image, got {name}")
    return ImageDecodeError(f"is not a {' or '.join(formats)} image (Pillow cannot identify it)")


def fit_image(im, size: tuple[int, int], *, fit: str = "crop", resample: str = "bilinear") -> np.ndarray:
    """An RGB `PIL.Image` brought to `size` (H, W): "pad" (centred on a white square, then resized) or "crop"
    (shorter side resized, centre crop); an image already of that size is kept pixel for pixel.
    Shape: -> (3, H, W) uint8.

    >>> from PIL import Image
    >>> black = Image.new("RGB", (4, 2), (0, 0, 0))                       # W x H = 4 x 2
    >>> fit_image(black, (4, 4), fit="pad")[0].tolist()                   # red channel: white above and below
    [[255, 255, 255, 255], [0, 0, 0, 0], [0, 0, 0, 0], [255, 255, 255, 255]]
    >>> fit_image(black, (2, 2), fit="crop").shape
    (3, 2, 2)
    """
    Image, _ = _pil()
    if fit not in ("pad", "crop"):
        raise ValueError(f"`fit` must be 'pad' or 'crop', got {fit!r}")
    filters = {"lanczos": Image.Resampling.LANCZOS, "bilinear": Image.Resampling.BILINEAR,
               "bicubic": Image.Resampling.BICUBIC}
    if resample not in filters:
        raise ValueError(f"`resample` must be one of {sorted(filters)}, got {resample!r}")
    h, w = size
    im = im.convert("RGB")
    if im.size != (w, h):
        iw, ih = im.size
        if fit == "pad":
            side = max(iw, ih)
            canvas = Image.new("RGB", (side, side), (255, 255, 255))
            canvas.paste(im, ((side - iw) // 2, (side - ih) // 2))
            im = canvas.resize((w, h), filters[resample])
        else:
            scale = max(w / iw, h / ih)
            im = im.resize((max(w, round(iw * scale)), max(h, round(ih * scale))), filters[resample])
            left, top = (im.size[0] - w) // 2, (im.size[1] - h) // 2
            im = im.crop((left, top, left + w, top + h))
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))      # (3, H, W)


def encode_png(pixels: np.ndarray) -> bytes:
    """(3, H, W) uint8 -> PNG bytes (lossless: `decode_png` gives the same pixels back)."""
    Image, _ = _pil()
    a = np.asarray(pixels)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[0] != 3:
        raise ValueError(f"`pixels` must be a (3, H, W) uint8 array, got {a.dtype} {a.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a.transpose(1, 2, 0)), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> (3, H, W) uint8 (RGB)."""
    Image, _ = _pil()
    with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1).copy()


# ------------------------------------------------------------------------------------------------- embedder
class ImageTextEmbedder(TwoTowerEmbedder):
    """The two towers of an image-text run: `encode(texts)` (the text tower) and `encode_images(pixels)` (the
    image tower), both L2-normalised float32 in the shared space of `dim` dimensions; `prepare_image(bytes)`
    decodes a query image the way the run's data was made. Thread-safe (one call at a time).

    Example (needs a trained run)::

        embedder = load_image_text_embedder("runs/clip-emoji")
        embedder.encode(["red heart"]).shape                   # (1, embed_dim)
        embedder.encode_images(embedder.prepare_image(open("heart.png", "rb").read())[None]).shape
    """

    def __init__(self, method, *, image_size: tuple[int, int], source: str, fit: str = "crop",
                 resample: str = "bilinear", max_pixels: int = MAX_IMAGE_PIXELS):
        super().__init__(method, image_size=image_size, source=source)
        self.fit, self.resample, self.max_pixels = fit, resample, max_pixels

    def prepare_image(self, data: bytes) -> np.ndarray:
        """PNG / JPEG bytes -> (3, H, W) uint8 at the run's image size (see `decode_image`, `fit_image`);
        ImageDecodeError for bytes that are not a usable image."""
        return fit_image(decode_image(data, max_pixels=self.max_pixels), self.image_size, fit=self.fit,
                         resample=self.resample)

    def __repr__(self) -> str:
        return f"ImageTextEmbedder(source={self.source!r}, dim={self.dim}, image_size={self.image_size})"


def _run_config(path: Path) -> dict | None:
    """The run's config.json parsed, or None (missing, unreadable, not an object)."""
    return RunDir(path).read_config()


def is_image_text_run(path) -> bool:
    """Whether `path` is a run directory of an image-text (two-tower) run."""
    cfg = _run_config(Path(path))
    return bool(cfg) and isinstance(cfg.get("model"), dict) and cfg["model"].get("modality") == "image_text"


def load_image_text_embedder(run_dir) -> ImageTextEmbedder:
    """Both towers of an image-text run, loaded by `contrastlab.runs.load_run` from the run directory alone (its
    config, tokenizer and last checkpoint: no training data), on the CPU."""
    from ..devices import CPU
    from ..runs import load_run
    run = RunDir(run_dir)
    cfg = run.read_config()
    if cfg is None:
        raise ValueError(f"{run.path} is not a run directory (no readable {run.config_file.name})")
    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    if model.get("modality") != "image_text":
        raise ValueError(f"{run.path} is not an image-text run (its {run.config_file.name} model is "
                         f"{model.get('modality', 'not two-tower')!r}); train one with "
                         f"`contrastlab train clip --data emoji`")
    loaded = load_run(run.path, device=CPU)
    fit, resample = QUERY_FIT.get(str(cfg.get("data")), ("crop", "bilinear"))
    return ImageTextEmbedder(loaded.method, image_size=tuple(int(v) for v in model["image_size"]),
                             source=str(run.path.resolve()), fit=fit, resample=resample)


# ----------------------------------------------------------------------------------------------------- index
class ImageTextIndex:
    """Named `VectorIndex` collections in one space: `images` (always) and `names` (an image-text run's texts;
    None for an image run's index, which holds images only), and one PNG thumbnail per image row (`thumbnails`:
    the PNGs back to back, `offsets` (N + 1,) their byte offsets). Save / load with `save` /
    `contrastlab.search.store.load_image_text_index`."""

    def __init__(self, images, names, thumbnails: bytes, offsets, meta: dict):
        if names is not None and images.dim != names.dim:
            raise ValueError(f"the images ({images.dim}-dimensional) and names ({names.dim}-dimensional) must share "
                             f"one space")
        offsets = np.asarray(offsets)
        if (offsets.ndim != 1 or len(offsets) != images.count + 1 or offsets.dtype.kind not in "iu"
                or (len(offsets) and (offsets[0] != 0 or offsets[-1] != len(thumbnails)))
                or (np.diff(offsets) <= 0).any()):
            raise ValueError(f"the thumbnails must be {images.count} non-empty PNGs (one per image) with "
                             f"{images.count + 1} increasing offsets from 0 to {len(thumbnails)}")
        self.images, self.names = images, names
        self.thumbnails = bytes(thumbnails)
        self.offsets = offsets.astype(np.int64)
        self.meta = dict(meta)

    @property
    def dim(self) -> int:
        return self.images.dim

    @property
    def count(self) -> int:
        return self.images.count

    @property
    def kind(self) -> str:
        return self.images.kind

    @property
    def targets(self) -> tuple[str, ...]:
        """The collections this index holds, in TARGETS order: ("images", "names") or ("images",)."""
        return TARGETS if self.names is not None else ("images",)

    @property
    def modalities(self) -> tuple[str, ...]:
        """What its queries may be: ("image", "text") for an image-text index, ("image",) for images only."""
        return ("image", "text") if self.names is not None else ("image",)

    def collection(self, target: str):
        """The `VectorIndex` of "images" or "names"."""
        if target not in TARGETS:
            raise ValueError(f"`target` must be one of {', '.join(TARGETS)}, got {target!r}")
        if target not in self.targets:
            raise ValueError(f"this index holds only {', '.join(self.targets)} (modalities: "
                             f"{', '.join(self.modalities)}), not {target}")
        return self.images if target == "images" else self.names

    def thumbnail(self, position: int) -> bytes:
        """The PNG bytes of the thumbnail of image row `position` (0 <= position < count)."""
        if isinstance(position, bool) or not isinstance(position, (int, np.integer)) \
                or not 0 <= position < self.count:
            raise IndexError(f"`position` must be an int in [0, {self.count}), got {position!r}")
        return self.thumbnails[self.offsets[position]:self.offsets[position + 1]]

    def summary(self) -> str:
        if self.names is None:
            return f"{self.images.count} images (image run, {self.kind}, dim {self.dim})"
        return (f"{self.images.count} images and {self.names.count} names (image-text, {self.kind}, "
                f"dim {self.dim})")

    def save(self, path) -> None:
        """Write to a folder atomically; see `contrastlab.search.folders.save_image_text_index`."""
        from .folders import save_image_text_index
        save_image_text_index(self, path)

    def __repr__(self) -> str:
        names = None if self.names is None else self.names.count
        return f"ImageTextIndex(images={self.images.count}, names={names}, dim={self.dim})"


def _embed_in_batches(fn, items, dim: int, *, batch_size: int, desc: str, unit: str, progress: bool) -> np.ndarray:
    from tqdm.auto import tqdm
    out = np.empty((len(items), dim), dtype=np.float32)                  # (N, D)
    with tqdm(total=len(items), unit=unit, desc=desc, disable=not progress) as bar:
        for i in range(0, len(items), batch_size):
            chunk = np.asarray(fn(items[i:i + batch_size]), dtype=np.float32)
            if chunk.shape != (len(items[i:i + batch_size]), dim):
                raise ValueError(f"the embedder returned shape {chunk.shape} for {len(items[i:i + batch_size])} "
                                 f"{unit}s, expected (n, {dim})")
            out[i:i + len(chunk)] = chunk
            bar.update(len(chunk))
    return out


def build_image_text_index(embedder, images, ids: Sequence[str], names: Sequence[str | None], *,
                           thumbnails=None, kind: str = "auto", batch_size: int = 256, tune_queries=None,
                           progress: bool = False, source: str | None = None,
                           meta: dict | None = None) -> ImageTextIndex:
    """Embed `images` (N, 3, H, W) uint8 with the image tower and the distinct non-blank `names` (N, str or None)
    with the text tower; index both (`kind`: see `VectorIndex.build`) and keep a PNG of each image (`thumbnails`
    (N, 3, h, w) uint8; default: `images` themselves, shrunk to at most MAX_THUMBNAIL_SIZE pixels a side).

    An approximate collection measures its recall on the other collection's vectors, the queries it will get
    (names search the images; images search the names), or on `tune_queries` (Q, D) for the images.
    `source`: what `load_embedder` loads the embedder from again (default: `embedder.source`).
    Returns the index with `meta` (the embedder's source, sizes, embedding seconds, plus `meta`).
    """
    x = np.asarray(images)
    n = len(x)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"`images` must be (N, 3, H, W) uint8, got {x.dtype} {x.shape}")
    if n == 0:
        raise ValueError("`images` must hold at least one image, got none")
    ids, names = list(ids), list(names)
    if len(ids) != n or len(names) != n:
        raise ValueError(f"`ids` and `names` must have one entry per image ({n}), got {len(ids)} and {len(names)}")
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name is not None and name.strip():
            first.setdefault(name, i)
    if not first:
        raise ValueError("the images have no names in this language: nothing for an image query to find")
    thumbs = _thumbnails(x if thumbnails is None else np.asarray(thumbnails), n)
    start = time.perf_counter()
    zi = _embed_in_batches(lambda b: embedder.encode_images(np.ascontiguousarray(b)), x, embedder.dim,
                           batch_size=batch_size, desc="images", unit="image", progress=progress)     # (N, D)
    distinct = list(first)
    zt = _embed_in_batches(lambda b: embedder.encode(list(b), batch_size=batch_size), distinct, embedder.dim,
                           batch_size=batch_size, desc="names", unit="name", progress=progress)       # (M, D)
    seconds = time.perf_counter() - start
    source = source if source is not None else getattr(embedder, "source", None)
    image_index = _build(zi, ids, texts=names, kind=kind, embedder=source,
                                    tune_queries=zt if tune_queries is None else tune_queries)
    name_index = _build(zt, [ids[first[s]] for s in distinct], texts=distinct, kind=kind,
                                   embedder=source, tune_queries=zi)
    pngs = [encode_png(t) for t in thumbs]
    offsets = np.cumsum([0] + [len(p) for p in pngs])
    info = {"modality": "image_text", "embedder": source, "image_size": list(x.shape[2:]),
            "thumbnail_size": list(thumbs.shape[2:]), "embed_seconds": round(seconds, 3),
            "query_image": {"fit": getattr(embedder, "fit", None), "resample": getattr(embedder, "resample", None)},
            **(meta or {})}
    return ImageTextIndex(image_index, name_index, b"".join(pngs), offsets, info)


def _thumbnails(t: np.ndarray, n: int) -> np.ndarray:
    """(N, 3, h, w) uint8 at most MAX_THUMBNAIL_SIZE a side (shrunk with Lanczos, keeping the aspect ratio)."""
    if t.dtype != np.uint8 or t.ndim != 4 or t.shape[1] != 3 or len(t) != n:
        raise ValueError(f"`thumbnails` must be ({n}, 3, h, w) uint8, got {t.dtype} {t.shape}")
    h, w = t.shape[2:]
    if max(h, w) <= MAX_THUMBNAIL_SIZE:
        return t
    Image, _ = _pil()
    scale = MAX_THUMBNAIL_SIZE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(p.transpose(1, 2, 0))).resize(
        size, Image.Resampling.LANCZOS)).transpose(2, 0, 1) for p in t])
