"""Search across modalities with an image-text (two-tower, CLIP) run: its embedder (`ImageTextEmbedder`: the
text tower's `encode`, the image tower's `encode_images`) and the decoding of query images (`decode_image`,
`fit_image`) and of thumbnails (`encode_png`, `decode_png`, `thumbnails_of`).

`contrastlab index RUN --out INDEX` indexes an image-text run's own images and names (see
`contrastlab.search.indexing.index_run`); a text query then finds images and an image query names.

>>> import numpy as np
>>> pngs = [encode_png(np.full((3, 4, 4), v, np.uint8)) for v in (0, 128, 255)]
>>> decode_png(pngs[2])[:, 0, 0].tolist()             # (3, H, W) uint8, as stored
[255, 255, 255]

This module loads faiss only when it needs it (`load_embedder` routes image-text runs here).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from ..rundir import RunDir
from ..runs.embedders import TwoTowerEmbedder

__all__ = ["ImageTextEmbedder", "load_image_text_embedder", "is_image_text_run", "ImageDecodeError", "decode_image",
           "fit_image", "encode_png", "decode_png", "thumbnails_of", "MAX_IMAGE_PIXELS", "MAX_THUMBNAIL_SIZE",
           "QUERY_FIT"]

#: The most pixels (width x height) a query image may have; larger ones are refused before they are decoded.
MAX_IMAGE_PIXELS = 2048 * 2048
#: Thumbnails are at most this many pixels on a side (the dataset images, shrunk if they are larger).
MAX_THUMBNAIL_SIZE = 64
#: How a query image is brought to the run's square image size, by dataset: "pad" (onto a white square, then
#: resize: how the emoji were rendered) or "crop" (shorter side, centre crop: how `captions:` folders are read),
#: and the resampling filter the dataset used. Datasets not listed: ("crop", "bilinear").
QUERY_FIT = {"emoji": ("pad", "lanczos")}
_FORMATS = ("PNG", "JPEG")


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


# ------------------------------------------------------------------------------------------------ thumbnails
def thumbnails_of(t: np.ndarray) -> np.ndarray:
    """Images (N, 1 or 3, h, w) uint8 -> (N, 3, h', w') at most MAX_THUMBNAIL_SIZE a side (a gray channel
    repeated; shrunk with Lanczos, keeping the aspect ratio).

    >>> thumbnails_of(np.zeros((2, 1, 128, 96), np.uint8)).shape
    (2, 3, 64, 48)
    """
    t = np.asarray(t)
    if t.dtype != np.uint8 or t.ndim != 4 or t.shape[1] not in (1, 3):
        raise ValueError(f"`thumbnails` must be (N, 1 or 3, h, w) uint8, got {t.dtype} {t.shape}")
    if t.shape[1] == 1:
        t = np.repeat(t, 3, axis=1)
    h, w = t.shape[2:]
    if max(h, w) <= MAX_THUMBNAIL_SIZE:
        return t
    Image, _ = _pil()
    scale = MAX_THUMBNAIL_SIZE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(p.transpose(1, 2, 0))).resize(
        size, Image.Resampling.LANCZOS)).transpose(2, 0, 1) for p in t])
