"""Images from a folder: ``"folder:PATH"``, one sub-folder per class or a flat folder (unlabelled).

Files: .png, .jpg, .jpeg, .bmp, .webp (any case; hidden files skipped), read with Pillow, EXIF
orientation applied. Grayscale (modes L, LA, 1, I, I;16) stays one channel only if *every* image
is grayscale; otherwise all become RGB (alpha dropped). One shared size is kept; mixed sizes (or an
explicit ``image_size``) are resized shorter side first and centre-cropped to a square of
``image_size`` (default: the median shorter side, at most 96). Unreadable files are skipped and
listed in ``notes``; more than half unreadable is an error. Labelled folders get a stratified 1/6
test split (seed 0).

Example::

    >>> import os, tempfile
    >>> from PIL import Image
    >>> from contrastlab.data import load_images
    >>> root = tempfile.mkdtemp()
    >>> for cls in ("cat", "dog"):
    ...     os.makedirs(os.path.join(root, cls))
    ...     for i in range(6):
    ...         Image.new("RGB", (10, 12), (i, 0, 0)).save(os.path.join(root, cls, f"{i}.png"))
    >>> data = load_images(f"folder:{root}")
    >>> data.classes, data.x.shape, data.x_test.shape
    (('cat', 'dog'), torch.Size([10, 3, 12, 10]), torch.Size([2, 3, 12, 10]))
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from . import limits
from .images import ImageData
from .registry import register_dataset
from .split import holdout_image_data

__all__ = ["load_folder", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
GRAY_MODES = frozenset({"L", "LA", "1", "I", "I;16", "I;16B", "I;16L", "I;16N"})
MAX_AUTO_SIZE = 96            # default target: the median shorter side, capped here
PROGRESS_OVER = 2000          # show a progress bar when reading more files than this
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR
_UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def _is_image(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES


def _scan(root: Path) -> tuple[list[Path], list[int] | None, tuple[str, ...] | None, list[str]]:
    """Image files in order, their class index (None when flat), class names, notes."""
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    per_class = {d.name: sorted(p for p in d.rglob("*") if _is_image(p)) for d in dirs}
    top = sorted(p for p in root.iterdir() if _is_image(p))
    classes = tuple(name for name, files in per_class.items() if files)
    if not classes:
        return top, None, None, []
    notes = []
    if top:
        notes.append(f"ignored {len(top)} image file(s) at the top level (class sub-folders present)")
    empty = [name for name, files in per_class.items() if not files]
    if empty:
        notes.append(f"ignored folders without images: {', '.join(empty)}")
    files = [p for c in classes for p in per_class[c]]
    labels = [i for i, c in enumerate(classes) for _ in per_class[c]]
    return files, labels, classes, notes


def _header(p: Path) -> tuple[str, tuple[int, int]]:
    """(mode, (W, H) after EXIF orientation) without decoding the pixels."""
    with Image.open(p) as im:
        w, h = im.size
        if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):                 # rotated by 90 degrees
            w, h = h, w
        return im.mode, (w, h)


def _decode(p: Path, gray: bool, target: int | None) -> np.ndarray:
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


def _listing(paths: list[str], limit: int = 10) -> str:
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


@register_dataset("folder", takes_path=True, description="one sub-folder of images per class, or a flat folder")
def load_folder(path: str, *, root: str | None = None, image_size: int | None = None) -> ImageData:
    """Read a folder of images into :class:`ImageData` (see the module docstring for the rules)."""
    from tqdm.auto import tqdm

    base = Path(os.path.abspath(os.path.expanduser(path)))
    if not base.is_dir():
        raise FileNotFoundError(f"image folder not found: {base}")
    files, labels, classes, notes = _scan(base)
    if not files:
        raise ValueError(f"{base}: no images found; expected one sub-folder per class of "
                         f"{'/'.join(IMAGE_SUFFIXES)} files, or a flat folder of them")
    rel = [str(p.relative_to(base)) for p in files]
    bad: dict[int, str] = {}
    heads: dict[int, tuple[str, tuple[int, int]]] = {}
    show = len(files) > PROGRESS_OVER
    for i, p in enumerate(tqdm(files, desc="scanning images", disable=not show, leave=False)):
        try:
            heads[i] = _header(p)
        except _UNREADABLE as exc:
            bad[i] = f"{type(exc).__name__}: {exc}"

    def refuse_if_mostly_bad():
        if 2 * len(bad) > len(files):
            first = min(bad)
            raise ValueError(f"{base}: {len(bad)} of {len(files)} image files are unreadable (more than half), "
                             f"refusing to continue; e.g. {rel[first]}: {bad[first]}. "
                             f"Unreadable: {_listing([rel[i] for i in sorted(bad)])}")

    refuse_if_mostly_bad()
    gray = all(mode in GRAY_MODES for mode, _ in heads.values())
    sizes = {size for _, size in heads.values()}
    target = image_size
    if target is None and len(sizes) > 1:
        target = min(MAX_AUTO_SIZE, int(np.median([min(s) for _, s in heads.values()])))
    if target is not None and sizes == {(target, target)}:
        target = None
    (w, h) = (target, target) if target is not None else next(iter(sizes))
    limits.check_image_bytes("`image_size`" if image_size is not None else f"{base}: the images", n=len(heads),
                             channels=1 if gray else 3, size=(h, w), setting="`image_size`")
    out = np.empty((len(heads), 1 if gray else 3, h, w), dtype=np.uint8)                 # (N, C, H, W)
    kept = []
    for row, i in enumerate(tqdm(sorted(heads), desc="reading images", disable=not show, leave=False)):
        try:
            img = _decode(files[i], gray, target)                                  # (H, W) or (H, W, 3)
            out[row] = img[None] if gray else img.transpose(2, 0, 1)
            kept.append(row)
        except _UNREADABLE as exc:
            bad[i] = f"{type(exc).__name__}: {exc}"
    refuse_if_mostly_bad()
    rows = np.asarray(sorted(heads))[kept]
    x = out if len(kept) == len(out) else out[kept]
    if bad:
        notes.append(f"skipped {len(bad)} unreadable file{'s' if len(bad) > 1 else ''}: "
                     f"{_listing([rel[i] for i in sorted(bad)])}")
    if not gray and any(mode in GRAY_MODES for mode, _ in heads.values()):
        notes.append("mixed grayscale and colour images: all converted to RGB")
    if target is not None:
        short = [min(s) for s in sizes]
        was = ("{}x{} (W x H)".format(*next(iter(sizes))) if len(sizes) == 1
               else f"{len(sizes)} sizes, shorter sides {min(short)}..{max(short)}")
        notes.append(f"resized to {target}x{target} (shorter side, centre crop, bilinear) from {was}")
    y = None
    if labels is not None:
        codes = np.asarray(labels, dtype=np.int64)[rows]
        present = np.unique(codes)
        if len(present) < len(classes):
            lost = [classes[c] for c in range(len(classes)) if c not in set(present.tolist())]
            notes.append(f"dropped classes whose images were all unreadable: {', '.join(lost)}")
        y, classes = np.searchsorted(present, codes).astype(np.int64), tuple(classes[c] for c in present)
    return holdout_image_data(f"folder:{base}", x, y, classes, notes=tuple(notes))
