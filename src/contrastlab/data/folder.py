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

from .decode import IMAGE_SUFFIXES
from .encoded import load_encoded
from .images import ImageData
from .registry import register_dataset

__all__ = ["load_folder", "FileStore", "IMAGE_SUFFIXES"]


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


class FileStore:
    """The image files of a folder as a store of :func:`~contrastlab.data.encoded.load_encoded` (what ``shards:`` and
    ``hf:`` give it too): item ``i`` is ``files[i]``, opened as a file, so a header is read without the pixels."""

    unit = "image file"

    def __init__(self, base: Path, files: list[Path]):
        self.base, self.files, self.name = base, files, f"folder:{base}"

    def __len__(self) -> int:
        return len(self.files)

    def open(self, item: int):
        return open(self.files[item], "rb")

    def read(self, item: int) -> bytes:
        return self.files[item].read_bytes()

    def describe(self, item: int) -> str:
        return self.files[item].relative_to(self.base).as_posix()

    def fingerprint(self) -> str:
        """Every file's name, size and modification time (a cached decode check is redone when one changes)."""
        import hashlib
        h = hashlib.sha256(str(self.base).encode())
        for p in self.files:
            st = p.stat()
            h.update(f"\0{p.relative_to(self.base)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
        return h.hexdigest()


@register_dataset("folder", takes_path=True, streams=True, folders=True,
                  description="one sub-folder of images per class, or a flat folder")
def load_folder(path: str, *, root: str | None = None, image_size: int | None = None,
                stream: bool | None = None) -> ImageData:
    """Read a folder of images into :class:`ImageData` (see the module docstring for the rules).

    ``stream``: None (default) keeps the images in memory when they fit and streams them from disk otherwise;
    True always streams (decoded by DataLoader workers while training); False always loads. Both give the same
    images in the same order.
    """
    if stream is not None and not isinstance(stream, bool):
        raise ValueError(f"`stream` must be True, False or None (stream when the images do not fit), got {stream!r}")
    base = Path(os.path.abspath(os.path.expanduser(path)))
    if not base.is_dir():
        raise FileNotFoundError(f"image folder not found: {base}")
    files, labels, classes, notes = _scan(base)
    if not files:
        raise ValueError(f"{base}: no images found; expected one sub-folder per class of "
                         f"{'/'.join(IMAGE_SUFFIXES)} files, or a flat folder of them")
    return load_encoded(FileStore(base, files), labels=None if labels is None else np.asarray(labels, dtype=np.int64),
                        classes=classes, image_size=image_size, stream=stream, notes=tuple(notes), kind="folder")
