"""Decoding one image file the way every image source does: EXIF orientation applied, 16-bit gray to 8-bit, gray or
RGB, the shorter side resized to a target (bilinear) and centre-cropped. Folders, WebDataset shards, Hugging Face
datasets and caption folders all decode with these functions, so the same file gives the same pixels everywhere.

>>> import io
>>> from PIL import Image
>>> buf = io.BytesIO()
>>> Image.new("RGB", (20, 10), (200, 10, 10)).save(buf, format="PNG")
>>> _ = buf.seek(0)
>>> read_header(buf)
('RGB', (20, 10))
>>> _ = buf.seek(0)
>>> decode_file(buf, False, 8).shape                   # shorter side 10 -> 8, then an 8x8 centre crop
(8, 8, 3)
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

__all__ = ["IMAGE_SUFFIXES", "GRAY_MODES", "MAX_AUTO_SIZE", "PROGRESS_OVER", "UNREADABLE", "read_header", "decode_file",
           "listing"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
GRAY_MODES = frozenset({"L", "LA", "1", "I", "I;16", "I;16B", "I;16L", "I;16N"})
MAX_AUTO_SIZE = 96            # default target: the median shorter side, capped here
PROGRESS_OVER = 2000          # show a progress bar when reading more files than this
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR
UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def read_header(p) -> tuple[str, tuple[int, int]]:
    """(mode, (W, H) after EXIF orientation) of the image file `p` (a path or a binary file), pixels not decoded."""
    with Image.open(p) as im:
        w, h = im.size
        if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):                 # rotated by 90 degrees
            w, h = h, w
        return im.mode, (w, h)


def decode_file(p, gray: bool, target: int | None) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8, resized shorter side to ``target`` and centre-cropped when given."""
    with Image.open(p) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        if im.mode.startswith("I"):                                          # 16-bit gray -> 8-bit
            wide = np.asarray(im, dtype=np.float64)
            im = Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8), "L")
        im = im.convert("L" if gray else "RGB")
        if target is not None:
            w, h = im.size
            scale = target / min(w, h)
            if scale != 1:
                im = im.resize((max(target, round(w * scale)), max(target, round(h * scale))),
                               _BILINEAR)
            w, h = im.size
            left, top = (w - target) // 2, (h - target) // 2
            im = im.crop((left, top, left + target, top + target))
        return np.asarray(im)


def listing(paths: list[str], limit: int = 10) -> str:
    """The first `limit` names, comma-separated, and how many more."""
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more
