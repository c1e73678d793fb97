"""Images kept as encoded files inside a container (tar shards, Arrow tables): :class:`EncodedImages`, the source
``shards:`` and ``hf:`` stream, and :func:`load_encoded`, the load they share with the rules of ``folder:``.

A container is a *store*: ``len(store)`` items, ``store.read(item) -> bytes`` (the encoded image file; random access,
safe to call in forked DataLoader workers), ``store.describe(item) -> str`` (where the item is, for messages),
``store.fingerprint() -> str`` (changes when the files do) and ``store.name``. :func:`load_encoded` reads each item's
header once, decides gray vs RGB and the target size exactly as :func:`~contrastlab.data.folder.load_folder` does,
decodes with the same function (shorter side then centre crop, bilinear), counts unreadable items (more than half:
refused) and holds out a test split like folders, unless the store comes with one.

Example::

    >>> import io
    >>> from PIL import Image
    >>> class Pngs:                                          # a store of six 3x4 PNGs held in memory
    ...     name = "pngs"
    ...     def __init__(self):
    ...         self.files = []
    ...         for i in range(6):
    ...             buf = io.BytesIO()
    ...             Image.new("L", (4, 3), 10 * i).save(buf, format="PNG")
    ...             self.files.append(buf.getvalue())
    ...     def __len__(self): return len(self.files)
    ...     def read(self, item): return self.files[item]
    ...     def describe(self, item): return f"png {item}"
    ...     def fingerprint(self): return "pngs-v1"
    >>> data = load_encoded(Pngs(), labels=None, classes=None)             # fits: decoded into memory
    >>> data.x.shape, data.streamed, data.x[[1, 5]][:, 0, 0, 0].tolist()
    (torch.Size([6, 1, 3, 4]), False, [10, 50])
    >>> x = EncodedImages(Pngs(), np.arange(6), gray=True, target=None, size=(3, 4))   # what stream=True trains on
    >>> x.shape, x[[1, 5]][:, 0, 0, 0].tolist(), x.describe(5)
    (torch.Size([6, 1, 3, 4]), [10, 50], 'png 5')
"""
from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import torch

from . import limits
from .cache import atomic_write, cache_dir
from .decode import GRAY_MODES, MAX_AUTO_SIZE, PROGRESS_OVER, UNREADABLE, decode_file, listing, read_header
from .images import ImageData
from .split import holdout_image_data
from .stream import ImageSource, find_unreadable

__all__ = ["EncodedImages", "load_encoded"]


def _open(store, item: int):
    """A binary file of the item: the store's own (``store.open``: a folder's file, whose header is read without
    reading the pixels) or its bytes in memory."""
    opener = getattr(store, "open", None)
    return opener(item) if opener is not None else io.BytesIO(store.read(item))


class EncodedImages(ImageSource):
    """Items ``items`` of a store, decoded on demand: what ``shards:`` and ``hf:`` stream, and what their in-memory
    loads decode, so both give the same pixels."""

    def __init__(self, store, items: np.ndarray, *, gray: bool, target: int | None, size: tuple[int, int]):
        super().__init__(n=len(items), channels=1 if gray else 3, size=size, name=store.name)
        self.store, self.items = store, np.asarray(items, dtype=np.int64)
        self.gray, self.target = gray, target

    def decode(self, i: int) -> np.ndarray:                                              # (C, H, W) uint8
        with _open(self.store, int(self.items[i])) as f:
            img = decode_file(f, self.gray, self.target)                                 # (H, W) or (H, W, 3)
        return img[None] if self.gray else img.transpose(2, 0, 1)

    def describe(self, i: int) -> str:
        return self.store.describe(int(self.items[i]))


def _check_key(source: EncodedImages, kind: str) -> str:
    """What a cached check depends on: the store's files (names, sizes, times), the items kept and the decode."""
    h = hashlib.sha256(f"{kind}|{source.name}|{source.store.fingerprint()}|{source.gray}|{source.target}|"
                       f"{tuple(source.shape[1:])}|".encode())
    h.update(source.items.tobytes())
    return h.hexdigest()[:32]


def _unreadable_when_streamed(source: EncodedImages, kind: str, show: bool) -> dict[int, str]:
    """Every item decoded once in worker processes (pixels discarded), cached per state of the store's files."""
    path = cache_dir(f"{kind}-checks", _check_key(source, kind) + ".json")
    try:
        return {int(k): v for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError):
        pass
    bad = find_unreadable(source, show_progress=show, desc="checking images")
    try:
        with atomic_write(path) as f:
            f.write(json.dumps({str(k): v for k, v in bad.items()}).encode())
    except OSError:                                       # a read-only home: check again next time
        pass
    return bad


def _codes(labels: np.ndarray, classes: tuple[str, ...], rows: np.ndarray, notes: list[str]):
    """Codes of the kept rows, renumbered over the classes still present (lost ones named in ``notes``)."""
    codes = labels[rows]
    present = np.unique(codes)
    if len(present) < len(classes):
        lost = [classes[c] for c in range(len(classes)) if c not in set(present.tolist())]
        notes.append(f"dropped classes whose images were all unreadable: {', '.join(lost)}")
    return np.searchsorted(present, codes).astype(np.int64), tuple(classes[c] for c in present)


def load_encoded(store, *, labels: np.ndarray | None, classes: tuple[str, ...] | None, image_size: int | None = None,
                 stream: bool | None = None, is_test: np.ndarray | None = None, notes: tuple[str, ...] = (),
                 kind: str = "encoded") -> ImageData:
    """:class:`ImageData` from the images of ``store`` (see the module docstring).

    Args:
        store: the container (``len``, ``read``, ``describe``, ``fingerprint``, ``name``).
        labels: (len(store),) int64 codes into ``classes``, or None (unlabelled).
        classes: the class names, or None.
        image_size: resize (shorter side, centre crop) to this square; None: the native size when every image has
            one size, else the median shorter side capped at 96 (as folders).
        stream: True streams (:class:`EncodedImages`, decoded by workers while training); False loads into memory;
            None loads when the decoded images fit in memory.
        is_test: (len(store),) bool, the store's own test split; None holds out a stratified 1/6 when labelled.
        notes: notes of the caller, kept first.
        kind: names the cache of checks (``"shards"``, ``"hf"``).
    """
    from ..progress import bar as tqdm

    if stream is not None and not isinstance(stream, bool):
        raise ValueError(f"`stream` must be True, False or None (stream when the images do not fit), got {stream!r}")
    name, n, notes = store.name, len(store), list(notes)
    unit = getattr(store, "unit", "image")                # what an item is called in messages ("image file")
    if n == 0:
        raise ValueError(f"{name}: no images (the dataset is empty)")
    bad: dict[int, str] = {}
    heads: dict[int, tuple[str, tuple[int, int]]] = {}
    show = n > PROGRESS_OVER
    for i in tqdm(range(n), desc="scanning images", disable=not show, leave=False):
        try:
            with _open(store, i) as f:
                heads[i] = read_header(f)
        except UNREADABLE as exc:
            bad[i] = f"{type(exc).__name__}: {exc}"

    def refuse_if_mostly_bad():
        if 2 * len(bad) > n:
            first = min(bad)
            raise ValueError(f"{name}: {len(bad)} of {n} {unit}s are unreadable (more than half), refusing to "
                             f"continue; e.g. {store.describe(first)}: {bad[first]}. "
                             f"Unreadable: {listing([store.describe(i) for i in sorted(bad)])}")

    refuse_if_mostly_bad()
    gray = all(mode in GRAY_MODES for mode, _ in heads.values())
    sizes = {size for _, size in heads.values()}
    target = image_size
    if target is None and len(sizes) > 1:
        target = min(MAX_AUTO_SIZE, int(np.median([min(s) for _, s in heads.values()])))
    if target is not None and sizes == {(target, target)}:
        target = None
    (w, h) = (target, target) if target is not None else next(iter(sizes))
    channels = 1 if gray else 3
    readable = np.asarray(sorted(heads), dtype=np.int64)
    source = EncodedImages(store, readable, gray=gray, target=target, size=(h, w))
    what = "`image_size`" if image_size is not None else f"{name}: the images"
    limits.check_image_bytes(what, n=1, channels=channels, size=(h, w))            # the side rule, in every mode
    fits = stream is not True
    if stream is None:
        try:
            limits.check_image_bytes("x", n=len(readable), channels=channels, size=(h, w))
        except ValueError as e:
            fits = False
            notes.append(f"streamed from disk: the decoded images would not fit in memory ({str(e).split(';')[0]})")
    if fits:
        limits.check_image_bytes(what, n=len(readable), channels=channels, size=(h, w),
                                 setting="`image_size` (or stream them with `--set stream=true`)")
        out = np.empty((len(readable), channels, h, w), dtype=np.uint8)                 # (N, C, H, W)
        kept = []
        for row in tqdm(range(len(readable)), desc="reading images", disable=not show, leave=False):
            try:
                out[row] = source.decode(row)
                kept.append(row)
            except UNREADABLE as exc:
                bad[int(readable[row])] = f"{type(exc).__name__}: {exc}"
        refuse_if_mostly_bad()
        x = out if len(kept) == len(out) else out[kept]
    else:
        for row, why in _unreadable_when_streamed(source, kind, show).items():
            bad[int(readable[row])] = why
        refuse_if_mostly_bad()
        kept = [row for row in range(len(readable)) if int(readable[row]) not in bad]
        x = source if len(kept) == len(readable) else source.subset(np.asarray(kept, dtype=np.int64))
        if stream:
            notes.append("streamed from disk (`stream=true`)")
    rows = readable[np.asarray(kept, dtype=np.int64)]                                  # store items kept, in order
    if bad:
        notes.append(f"skipped {len(bad)} unreadable {unit}{'s' if len(bad) > 1 else ''}: "
                     f"{listing([store.describe(i) for i in sorted(bad)])}")
    if not gray and any(mode in GRAY_MODES for mode, _ in heads.values()):
        notes.append("mixed grayscale and colour images: all converted to RGB")
    if target is not None:
        short = [min(s) for s in sizes]
        was = ("{}x{} (W x H)".format(*next(iter(sizes))) if len(sizes) == 1
               else f"{len(sizes)} sizes, shorter sides {min(short)}..{max(short)}")
        notes.append(f"resized to {target}x{target} (shorter side, centre crop, bilinear) from {was}")
    y = None
    if labels is not None:
        y, classes = _codes(np.asarray(labels, dtype=np.int64), classes, rows, notes)
    if is_test is None:
        return holdout_image_data(name, x, y, classes, notes=tuple(notes))
    return _given_split(name, x, y, classes, np.asarray(is_test, dtype=bool)[rows], notes)


def _given_split(name: str, x, y, classes, test: np.ndarray, notes: list[str]) -> ImageData:
    """ImageData with the store's own train / test split (``test``: one bool per kept image)."""
    train_rows, test_rows = np.flatnonzero(~test), np.flatnonzero(test)
    if len(train_rows) == 0:
        raise ValueError(f"{name}: no readable training images (the train split is empty or all unreadable)")

    def part(rows):
        return x.subset(rows) if isinstance(x, ImageSource) else torch.from_numpy(np.ascontiguousarray(x[rows]))

    t = (lambda a: None if a is None else torch.from_numpy(a))                       # noqa: E731
    notes.append(f"train / test split from the dataset: {len(train_rows)} / {len(test_rows)} images")
    if len(test_rows) == 0:
        return ImageData(name, part(train_rows), t(None if y is None else y[train_rows]), None, None,
                         classes if y is not None else None, None, tuple(notes))
    return ImageData(name, part(train_rows), t(None if y is None else y[train_rows]), part(test_rows),
                     t(None if y is None else y[test_rows]), classes if y is not None else None, None, tuple(notes))
