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

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from . import limits
from .cache import atomic_write, cache_dir
from .images import ImageData
from .registry import register_dataset
from .split import holdout_image_data
from .stream import ImageSource, find_unreadable

__all__ = ["load_folder", "FolderImages", "IMAGE_SUFFIXES"]

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


class FolderImages(ImageSource):
    """The images of a folder, decoded on demand (gray or RGB, resized to ``target`` when given): what
    ``folder:PATH`` streams, and what the in-memory load decodes, so both give the same pixels."""

    def __init__(self, base: Path, files: list[Path], *, gray: bool, target: int | None, size: tuple[int, int]):
        super().__init__(n=len(files), channels=1 if gray else 3, size=size, name=f"folder:{base}")
        self.base, self.files, self.gray, self.target = base, files, gray, target

    def decode(self, i: int) -> np.ndarray:                                            # (C, H, W) uint8
        img = _decode(self.files[i], self.gray, self.target)                          # (H, W) or (H, W, 3)
        return img[None] if self.gray else img.transpose(2, 0, 1)

    def describe(self, i: int) -> str:
        return str(self.files[i].relative_to(self.base))


def _check_key(source: FolderImages) -> str:
    """What a cached check of a folder depends on: every file's name, size and modification time, and the decode."""
    h = hashlib.sha256(f"{source.base}|{source.gray}|{source.target}|{tuple(source.shape[1:])}".encode())
    for p in source.files:
        st = p.stat()
        h.update(f"\0{p}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def _unreadable_when_streamed(source: FolderImages, show: bool) -> dict[int, str]:
    """Every file decoded once in worker processes (pixels discarded); the result is cached per folder state, so a
    resumed or evaluated run does not decode the whole folder again."""
    path = cache_dir("folder-checks", _check_key(source) + ".json")
    try:
        return {int(k): v for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError):
        pass
    bad = find_unreadable(source, show_progress=show, desc="checking images")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            f.write(json.dumps({str(k): v for k, v in bad.items()}).encode())
    except OSError:                                       # a read-only home: check again next time
        pass
    return bad


@register_dataset("folder", takes_path=True, streams=True, folders=True,
                  description="one sub-folder of images per class, or a flat folder")
def load_folder(path: str, *, root: str | None = None, image_size: int | None = None,
                stream: bool | None = None) -> ImageData:
    """Read a folder of images into :class:`ImageData` (see the module docstring for the rules).

    ``stream``: None (default) keeps the images in memory when they fit and streams them from disk otherwise;
    True always streams (:class:`FolderImages`, decoded by DataLoader workers while training); False always loads.
    Both give the same images in the same order.
    """
    from ..progress import bar as tqdm

    if stream is not None and not isinstance(stream, bool):
        raise ValueError(f"`stream` must be True, False or None (stream when the images do not fit), got {stream!r}")
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
    readable = sorted(heads)
    source = FolderImages(base, [files[i] for i in readable], gray=gray, target=target, size=(h, w))
    limits.check_image_bytes("`image_size`" if image_size is not None else f"{base}: the images", n=1,
                             channels=1 if gray else 3, size=(h, w))            # the side rule, in every mode
    fits = stream is not True
    if stream is None:
        try:
            limits.check_image_bytes("x", n=len(heads), channels=1 if gray else 3, size=(h, w))
        except ValueError as e:
            fits = False
            notes.append(f"streamed from disk: the decoded images would not fit in memory ({str(e).split(';')[0]})")
    if fits:
        limits.check_image_bytes("`image_size`" if image_size is not None else f"{base}: the images",
                                 n=len(heads), channels=1 if gray else 3, size=(h, w),
                                 setting="`image_size` (or stream them with `--set stream=true`)")
        out = np.empty((len(heads), 1 if gray else 3, h, w), dtype=np.uint8)             # (N, C, H, W)
        kept = []
        for row in tqdm(range(len(readable)), desc="reading images", disable=not show, leave=False):
            try:
                out[row] = source.decode(row)
                kept.append(row)
            except _UNREADABLE as exc:
                bad[readable[row]] = f"{type(exc).__name__}: {exc}"
        refuse_if_mostly_bad()
        x = out if len(kept) == len(out) else out[kept]
    else:
        for row, why in _unreadable_when_streamed(source, show).items():
            bad[readable[row]] = why
        refuse_if_mostly_bad()
        kept = [row for row in range(len(readable)) if readable[row] not in bad]
        x = source if len(kept) == len(readable) else source.subset(np.asarray(kept, dtype=np.int64))
        if stream:
            notes.append("streamed from disk (`stream=true`)")
    rows = np.asarray(readable)[kept]
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
