"""Series from your own files: ``"series:PATH.npz"``, ``"series:PATH.csv"``, ``"series:PATH.parquet"``.

The ``series:`` prefix is required: a bare ``.npz`` is an image archive and a bare ``.csv`` / ``.parquet`` a text
pair file in the one dataset registry, where a suffix names one dataset.

* ``.npz``: ``x`` (N, T) or (N, C, T), any real dtype; optional ``y`` (N,) labels (integers or strings, remapped
  to 0..K-1 in sorted order, the values kept as class names), ``x_test`` / ``y_test``.
* ``.csv`` / ``.parquet``: one univariate series per row, the time steps in column order; an optional ``label``
  column and an optional ``split`` column (``train`` / ``test``). Trailing empty cells mean a shorter series:
  unequal lengths are refused (not padded), as are NaN/inf values, empty rows and rows without a label when others
  have one; every error names the file and the row.

Labelled data without a test split gets a stratified 1/6 test split (seed 0), noted in ``notes``. Option
``normalize`` (default "auto": see :data:`~contrastlab.data.sequences.NORMALIZE`).

Example::

    >>> import numpy as np, os, tempfile
    >>> from contrastlab.data import load_sequences
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.npz")
    >>> np.savez(path, x=np.random.default_rng(0).normal(size=(12, 30)), y=np.array(["up", "down"] * 6))
    >>> data = load_sequences(f"series:{path}")
    >>> data.x.shape, data.classes, data.x_test.shape[0]
    (torch.Size([10, 1, 30]), ('down', 'up'), 2)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .sequences import SequenceData, normalize_series, register_sequence_dataset, rows_to_series
from .split import TEST_FRACTION, remap_labels, stratified_holdout

__all__ = ["load_series_file"]

_LABEL, _SPLIT = "label", "split"


def _npz(p: Path):
    try:
        archive = np.load(p, allow_pickle=False)
    except Exception as e:                                           # truncated, not a zip, pickled objects
        raise ValueError(f"{p}: not a readable .npz archive ({type(e).__name__}: {e})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{p}: expected an .npz archive of named arrays, got a single .npy array")
    with archive:
        if "x" not in archive.files:
            raise ValueError(f"{p}: missing array `x` (the series); the archive has {sorted(archive.files)}")
        a = {k: archive[k] for k in ("x", "y", "x_test", "y_test") if k in archive.files}

    def series(key):
        arr = a[key]
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{p}: `{key}` must hold real numbers, got dtype {arr.dtype}")
        if arr.ndim not in (2, 3):
            raise ValueError(f"{p}: `{key}` must have shape (N, T) or (N, C, T), got shape {arr.shape}")
        if arr.shape[0] == 0:
            raise ValueError(f"{p}: `{key}` holds no series, shape {arr.shape}")
        return rows_to_series(list(arr[:, None] if arr.ndim == 2 else arr), f"{p}: `{key}`")
    x = series("x")
    x_test = series("x_test") if "x_test" in a else None
    return x, a.get("y"), x_test, a.get("y_test")


def _table(p: Path):
    import pandas as pd
    try:
        df = pd.read_parquet(p) if p.suffix.lower() == ".parquet" else pd.read_csv(p)
    except Exception as e:
        raise ValueError(f"{p}: not a readable {p.suffix} table ({type(e).__name__}: {e})") from None
    if len(df) == 0:
        raise ValueError(f"{p}: holds no series (no rows)")
    labels = df.pop(_LABEL) if _LABEL in df.columns else None
    split = df.pop(_SPLIT).astype(str).str.strip().str.lower() if _SPLIT in df.columns else None
    try:
        values = df.apply(pd.to_numeric, errors="raise").to_numpy(dtype=np.float64)    # (N, T) with NaN holes
    except (ValueError, TypeError) as e:
        raise ValueError(f"{p}: every column but `{_LABEL}` and `{_SPLIT}` must hold numbers ({e})") from None
    rows = []
    for i, r in enumerate(values):
        known = np.flatnonzero(~np.isnan(r))
        rows.append(r[: known[-1] + 1] if known.size else r[:0])    # trailing empty cells: a shorter series
    x = rows_to_series([r[None] for r in rows], str(p))
    y = None
    if labels is not None:
        missing = labels.isna().to_numpy() | (labels.astype(str).str.strip() == "").to_numpy()
        if missing.any():
            raise ValueError(f"{p}: row {int(np.flatnonzero(missing)[0])} has no `{_LABEL}` ({int(missing.sum())} of "
                             f"{len(labels)} rows); label every row or drop the column")
        y = labels.to_numpy()
        y = y.astype(np.int64) if y.dtype.kind in "iu" else y.astype(str)
    if split is None:
        return x, y, None, None
    bad = ~split.isin(["train", "test"]).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{p}: row {i} has `{_SPLIT}` {split.iloc[i]!r}; use 'train' or 'test'")
    test = (split == "test").to_numpy()
    if test.all():
        raise ValueError(f"{p}: every row is in the test split; mark some rows 'train'")
    return (x[~test], None if y is None else y[~test], x[test] if test.any() else None,
            None if y is None or not test.any() else y[test])


def _check_labels(key: str, arr, n: int, p: Path) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{p}: `{key}` must have shape (N,) = ({n},), got {arr.shape}")
    if arr.dtype.kind == "f":
        if np.isnan(arr).any():
            raise ValueError(f"{p}: `{key}` has no label in row {int(np.flatnonzero(np.isnan(arr))[0])} "
                             f"({int(np.isnan(arr).sum())} of {n} missing); label every series or leave `{key}` out")
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{p}: `{key}` must hold integer (or string) labels, got non-integer floats")
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iuU":
        raise ValueError(f"{p}: `{key}` must hold integer (or string) labels, got dtype {arr.dtype}")
    return arr


@register_sequence_dataset("series", takes_path=True, options=("normalize",),
                           description="your series: series:PATH.npz (x (N, T) or (N, C, T)), series:PATH.csv or "
                                       ".parquet (one series per row, optional label and split columns)")
def load_series_file(path: str, *, root: str | None = None, normalize: str = "auto") -> SequenceData:
    p = Path(os.path.abspath(os.path.expanduser(path)))
    if not p.is_file():
        raise FileNotFoundError(f"series file not found: {p}")
    kind = p.suffix.lower()
    if kind not in (".npz", ".csv", ".parquet"):
        raise ValueError(f"{p}: `series:` reads .npz, .csv or .parquet files, got {kind or 'no suffix'}")
    x, y, x_test, y_test = _npz(p) if kind == ".npz" else _table(p)
    if x_test is not None and x_test.shape[1:] != x.shape[1:]:
        raise ValueError(f"{p}: test series of shape (C, T) = {x_test.shape[1:]}, the training series' are "
                         f"{x.shape[1:]}")
    if y is not None:
        y = _check_labels("y", y, len(x), p)
    if y_test is not None:
        if y is None:
            raise ValueError(f"{p}: `y_test` needs `y` (labels are all or nothing)")
        y_test = _check_labels("y_test", y_test, len(x_test), p)
    elif y is not None and x_test is not None:
        raise ValueError(f"{p}: the test series need labels because the training series have them")
    notes = []
    if y is not None and x_test is None:
        train, test = stratified_holdout(y, fraction=TEST_FRACTION, seed=0)
        x, x_test, y, y_test = x[train], x[test], y[train], y[test]
        notes.append(f"held out a stratified 1/6 test split ({len(test)} series, seed 0)")
    elif x_test is not None:
        notes.append("test split from the file")
    classes = yy = yt = None
    if y is not None:
        both, classes = remap_labels(np.concatenate([y, y_test]))
        yy, yt = torch.from_numpy(both[: len(y)]), torch.from_numpy(both[len(y):])
    x, x_test, note = normalize_series(x, x_test, normalize)
    return SequenceData(f"series:{p}", torch.from_numpy(x), yy, None if x_test is None else torch.from_numpy(x_test),
                        yt, classes, tuple(notes) + (note,))
