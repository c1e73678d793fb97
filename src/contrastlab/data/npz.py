"""Images from a NumPy ``.npz`` archive: ``"PATH.npz"`` or ``"npz:PATH"``.

Arrays: ``x`` (N, H, W) or (N, H, W, C) uint8 with C in {1, 3}; optional ``y`` (N,) labels (any
integers or strings, remapped to 0..K-1 in sorted order, the original values kept as class
names); optional ``group`` (N,) ids of multi-instance positives; optional ``x_test`` / ``y_test``.
Without ``x_test``, labelled data gets a stratified 1/6 test split (seed 0), noted in ``notes``.
Loaded with ``allow_pickle=False``; every problem is a ValueError naming the file and the array.

Example::

    >>> import numpy as np, os, tempfile
    >>> from contrastlab.data import load_images
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.npz")
    >>> np.savez(path, x=np.zeros((12, 5, 5), np.uint8), y=np.array([3, 7] * 6))
    >>> data = load_images(path)
    >>> data.x.shape, data.classes, data.x_test.shape[0]
    (torch.Size([10, 1, 5, 5]), ('3', '7'), 2)
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from .images import ImageData
from .registry import register_dataset
from .split import holdout_image_data, remap_labels

__all__ = ["load_npz"]

_KNOWN = ("x", "y", "group", "x_test", "y_test")
_CORRUPT = (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError)


def _array(archive, key: str, path: Path) -> np.ndarray:
    try:
        return archive[key]
    except _CORRUPT as exc:
        if "allow_pickle" in str(exc):
            raise ValueError(f"{path}: `{key}` is an object array (pickled Python objects), which is not "
                             f"loaded for safety; save a numeric array instead") from None
        raise ValueError(f"{path}: cannot read array `{key}`, the file is truncated or corrupt "
                         f"({type(exc).__name__}: {exc})") from None


def _images(key: str, arr: np.ndarray, path: Path, like: np.ndarray | None = None) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) uint8 -> (N, C, H, W) contiguous."""
    if arr.dtype != np.uint8:
        tip = " (scale floats in [0, 1] by 255 first)" if arr.dtype.kind == "f" else ""
        raise ValueError(f"{path}: `{key}` must have dtype uint8, got {arr.dtype}; "
                         f"convert with `{key}.astype(np.uint8)`{tip}")
    if arr.ndim not in (3, 4):
        raise ValueError(f"{path}: `{key}` must have shape (N, H, W) or (N, H, W, C), got a {arr.ndim}-d "
                         f"array of shape {arr.shape}")
    if arr.ndim == 4 and arr.shape[3] not in (1, 3):
        tip = ("; it looks channel-first: use `x.transpose(0, 2, 3, 1)`" if arr.shape[1] in (1, 3)
               else "; drop alpha with `x[..., :3]`" if arr.shape[3] == 4 else "")
        raise ValueError(f"{path}: `{key}` must have C in {{1, 3}} channels in its last axis (N, H, W, C), "
                         f"got C={arr.shape[3]} in shape {arr.shape}{tip}")
    if 0 in arr.shape:
        raise ValueError(f"{path}: `{key}` must hold at least one non-empty image, got shape {arr.shape}")
    out = arr[:, None] if arr.ndim == 3 else arr.transpose(0, 3, 1, 2)
    if like is not None and out.shape[1:] != like.shape[1:]:
        raise ValueError(f"{path}: `{key}` must have the same image shape as `x`, (C, H, W) = {like.shape[1:]}, "
                         f"got {out.shape[1:]}")
    return np.ascontiguousarray(out)


def _ids(key: str, arr: np.ndarray, n: int, of: str, path: Path) -> np.ndarray:
    """A (n,) array of integers or strings (validated, not yet remapped)."""
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{path}: `{key}` must have shape (N,) = ({n},) like `{of}`, got {arr.shape}")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError(f"{path}: `{key}` contains NaN ({int(np.isnan(arr).sum())} of {n} values); every "
                         f"image needs a value, or leave `{key}` out")
    if arr.dtype.kind not in "iuU":
        raise ValueError(f"{path}: `{key}` must hold integer (or string) values, got dtype {arr.dtype}; "
                         f"convert with `{key}.astype(np.int64)`")
    return arr


def _codes_like(y_test: np.ndarray, values: np.ndarray, path: Path) -> np.ndarray:
    """Map ``y_test`` onto the sorted label values of ``y``; unknown labels are an error."""
    if (y_test.dtype.kind == "U") != (values.dtype.kind == "U"):
        raise ValueError(f"{path}: `y_test` must hold the same kind of labels as `y`, got dtypes "
                         f"{y_test.dtype} and {values.dtype}")
    pos = np.clip(np.searchsorted(values, y_test), 0, len(values) - 1)
    unknown = np.unique(y_test[values[pos] != y_test])
    if unknown.size:
        raise ValueError(f"{path}: `y_test` must only hold labels present in `y`, got {unknown[:10].tolist()} "
                         f"not in `y`")
    return pos.astype(np.int64)


@register_dataset("npz", takes_path=True, suffixes=(".npz",),
                  description="NumPy archive with x [, y, group, x_test, y_test]")
def load_npz(path: str, *, root: str | None = None, image_size: int | None = None) -> ImageData:
    """Load an .npz archive as :class:`ImageData` (``image_size`` is applied by ``load_images``)."""
    p = Path(os.path.abspath(os.path.expanduser(path)))
    if not p.is_file():
        raise FileNotFoundError(f"npz file not found: {p}")
    try:
        archive = np.load(p, allow_pickle=False)
    except _CORRUPT as exc:
        raise ValueError(f"{p}: not a readable .npz archive, the file is truncated or corrupt "
                         f"({type(exc).__name__}: {exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{p}: expected an .npz archive of named arrays, got a single .npy array; "
                         f"save with `np.savez(path, x=images, y=labels)`")
    with archive:
        if "x" not in archive.files:
            raise ValueError(f"{p}: missing array `x` (the images); the archive has {sorted(archive.files)}")
        a = {k: _array(archive, k, p) for k in _KNOWN if k in archive.files}
        ignored = sorted(set(archive.files) - set(_KNOWN))
    x = _images("x", a["x"], p)
    n = x.shape[0]
    notes = (f"ignored arrays {ignored} (known: {list(_KNOWN)})",) if ignored else ()
    y = classes = values = None
    if "y" in a:
        values = np.unique(_ids("y", a["y"], n, "x", p))
        y, classes = remap_labels(a["y"])
    group = remap_labels(_ids("group", a["group"], n, "x", p))[0] if "group" in a else None
    name = f"npz:{p}"
    if "x_test" not in a:
        if "y_test" in a:
            raise ValueError(f"{p}: `y_test` needs `x_test`, which is missing")
        return holdout_image_data(name, x, y, classes, group=group, notes=notes)
    x_test = _images("x_test", a["x_test"], p, like=x)
    y_test = None
    if "y_test" in a:
        if y is None:
            raise ValueError(f"{p}: `y_test` needs `y` (labels are all or nothing), which is missing")
        y_test = _codes_like(_ids("y_test", a["y_test"], x_test.shape[0], "x_test", p), values, p)
    elif y is not None:
        raise ValueError(f"{p}: `x_test` needs `y_test` because `y` is given (labels are all or nothing)")
    t = torch.from_numpy
    return ImageData(name, t(x), None if y is None else t(y), t(x_test), None if y_test is None else t(y_test),
                     classes, None if group is None else t(group), notes + ("test split from the file",))
