"""`SequenceData`: the one container every sequence (time-series) dataset loads into, and :func:`load_sequences`,
which turns a spec (``"ucr:ArrowHead"``, ``"series:data.npz"``) into it.

Series are float32 (N, C, T): N series of C channels and T time steps, finite everywhere, with optional integer
labels and a test split. Loaders of the modality ``"sequence"`` register themselves in the one dataset registry
(:mod:`contrastlab.data.registry`); :func:`rows_to_series` turns rows read from a file into a validated (N, C, T)
array with errors that name the file and the row, and :func:`normalize_series` is the z-normalisation they apply.

Example::

    >>> import torch
    >>> from contrastlab.data import SequenceData
    >>> data = SequenceData("toy", torch.zeros(6, 2, 10), torch.tensor([0, 1, 0, 1, 0, 1]), None, None, ("a", "b"))
    >>> data.channels, data.length, data.num_classes
    (2, 10, 2)
    >>> data
    SequenceData(name='toy', x=(6, 2, 10), test=None, classes=2)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from . import registry

__all__ = ["SequenceData", "load_sequences", "register_sequence_dataset", "list_sequence_datasets",
           "rows_to_series", "normalize_series", "NORMALIZE"]

#: how loaders z-normalise: per series and channel over time (UCR's convention), per channel over the whole
#: training set (TS2Vec's protocol for UEA data; the test split uses the training statistics), or not at all;
#: "auto" is "series" for one channel and "channel" for several.
NORMALIZE = ("auto", "series", "channel", "none")


def _series(name: str, value, *, like: torch.Tensor | None = None) -> torch.Tensor:
    """A non-empty finite (N, C, T) float32 tensor; same (C, T) as ``like``."""
    if not torch.is_tensor(value):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape (N, C, T), got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"`{name}` must be floating point, got dtype {value.dtype}; convert with `.float()`")
    if value.dim() != 3:
        raise ValueError(f"`{name}` must have shape (N, C, T), got a {value.dim()}-d tensor of shape "
                         f"{tuple(value.shape)}")
    if 0 in value.shape:
        raise ValueError(f"`{name}` must not be empty (N, C and T >= 1), got shape {tuple(value.shape)}")
    bad = ~torch.isfinite(value).flatten(1).all(1)
    if bool(bad.any()):
        rows = bad.nonzero().squeeze(1)
        raise ValueError(f"`{name}` must be finite, got NaN or inf in {rows.numel()} series (first: row "
                         f"{int(rows[0])})")
    if like is not None and value.shape[1:] != like.shape[1:]:
        raise ValueError(f"`{name}` must have the same (C, T) as `x`, {tuple(like.shape[1:])}, "
                         f"got {tuple(value.shape[1:])}")
    return value.to(torch.float32).contiguous()


def _ids(name: str, value, n: int, of: str, num_classes: int | None) -> torch.Tensor:
    if not torch.is_tensor(value) or value.dtype != torch.int64:
        got = value.dtype if torch.is_tensor(value) else type(value).__name__
        raise TypeError(f"`{name}` must be an int64 tensor of shape ({n},), got {got}")
    if value.dim() != 1 or value.shape[0] != n:
        raise ValueError(f"`{name}` must have shape (N,) = ({n},) like `{of}`, got {tuple(value.shape)}")
    if int(value.min()) < 0 or (num_classes is not None and int(value.max()) >= num_classes):
        raise ValueError(f"`{name}` must hold labels in [0, {num_classes or 'K'}), got values in "
                         f"[{int(value.min())}, {int(value.max())}]")
    return value.contiguous()


@dataclass(frozen=True)
class SequenceData:
    """Train series (and optionally a test split, labels and class names) as float32 tensors.

    Shape:
        x: (N, C, T) float32, finite. y: (N,) int64. x_test: (M, C, T). y_test: (M,).

    Labels are all or nothing, as for :class:`~contrastlab.data.ImageData`. ``notes`` records how the data was
    made (the file's split, the normalisation).
    """

    name: str
    x: torch.Tensor                            # (N, C, T) float32
    y: torch.Tensor | None                     # (N,) int64
    x_test: torch.Tensor | None                # (M, C, T)
    y_test: torch.Tensor | None                # (M,)
    classes: tuple[str, ...] | None
    notes: tuple[str, ...] = ()

    modality = "sequence"                      # (not fields) what kind of data this is
    group = None                               # no multi-instance groups

    def __len__(self) -> int:
        return self.x.shape[0]

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` must be a non-empty str, got {self.name!r}")
        fix = {"x": _series("x", self.x)}
        if self.x_test is not None:
            fix["x_test"] = _series("x_test", self.x_test, like=fix["x"])
        if self.classes is not None:
            if not isinstance(self.classes, tuple) or not all(isinstance(c, str) for c in self.classes):
                raise TypeError(f"`classes` must be a tuple of str, got {self.classes!r}")
            if not self.classes or len(set(self.classes)) != len(self.classes):
                raise ValueError(f"`classes` must be non-empty and unique, got {self.classes!r}")
        k = None if self.classes is None else len(self.classes)
        if self.y is None:
            for other in ("y_test", "classes"):
                if getattr(self, other) is not None:
                    raise ValueError(f"`{other}` must be None when `y` is None (unlabelled data), "
                                     f"got {type(getattr(self, other)).__name__}")
        else:
            fix["y"] = _ids("y", self.y, fix["x"].shape[0], "x", k)
            if self.x_test is not None and self.y_test is None:
                raise ValueError("`y_test` must be given when `y` and `x_test` are (labels are all or nothing), "
                                 "got None")
        if self.y_test is not None:
            if self.x_test is None:
                raise ValueError("`y_test` must be None when `x_test` is None, got a tensor")
            fix["y_test"] = _ids("y_test", self.y_test, fix["x_test"].shape[0], "x_test", k)
        if not isinstance(self.notes, tuple) or not all(isinstance(s, str) for s in self.notes):
            raise TypeError(f"`notes` must be a tuple of str, got {self.notes!r}")
        for key, value in fix.items():
            object.__setattr__(self, key, value)

    @property
    def channels(self) -> int:
        return int(self.x.shape[1])

    @property
    def length(self) -> int:
        """T, the time steps of every series."""
        return int(self.x.shape[2])

    @property
    def num_classes(self) -> int | None:
        """len(classes); without names, 1 + the largest label; None when unlabelled."""
        if self.y is None:
            return None
        if self.classes is not None:
            return len(self.classes)
        top = int(self.y.max()) if self.y_test is None else max(int(self.y.max()), int(self.y_test.max()))
        return top + 1

    def __repr__(self) -> str:
        test = None if self.x_test is None else int(self.x_test.shape[0])
        return f"SequenceData(name={self.name!r}, x={tuple(self.x.shape)}, test={test}, classes={self.num_classes})"


def rows_to_series(rows: list, where: str, *, first_row: int = 0) -> np.ndarray:
    """Stack per-row (C, T) float arrays into (N, C, T), refusing what cannot be trained on: a row of zero
    length, NaN or inf, another channel count than the first row's, or another length (unequal lengths are
    refused, not padded). Errors name ``where`` (the file) and the row (numbered from ``first_row``).

    >>> rows_to_series([np.zeros((1, 3)), np.ones((1, 3))], "a.csv").shape
    (2, 1, 3)
    >>> rows_to_series([np.zeros((1, 3)), np.ones((1, 4))], "a.csv")
    Traceback (most recent call last):
    ValueError: a.csv: row 1 has 4 time steps, row 0 has 3; series of unequal length are not padded: resample them to one length first
    """
    if not rows:
        raise ValueError(f"{where}: holds no series")
    out = []
    c0 = t0 = None
    for i, r in enumerate(rows):
        r = np.asarray(r, dtype=np.float64)
        if r.ndim == 1:
            r = r[None]
        row = first_row + i
        if r.ndim != 2:
            raise ValueError(f"{where}: row {row} must be a (C, T) series, got shape {r.shape}")
        if r.shape[1] == 0:
            raise ValueError(f"{where}: row {row} has zero length (no time steps)")
        if not np.isfinite(r).all():
            what = "NaN" if np.isnan(r).any() else "inf"
            raise ValueError(f"{where}: row {row} holds {what} (at time step {int(np.flatnonzero(~np.isfinite(r).all(0))[0])}); "
                             f"fill or drop missing values first")
        if c0 is None:
            c0, t0 = r.shape
        elif r.shape[0] != c0:
            raise ValueError(f"{where}: row {row} has {r.shape[0]} channels, row {first_row} has {c0}; every series "
                             f"needs the same channels")
        elif r.shape[1] != t0:
            raise ValueError(f"{where}: row {row} has {r.shape[1]} time steps, row {first_row} has {t0}; series of "
                             f"unequal length are not padded: resample them to one length first")
        out.append(r)
    return np.stack(out).astype(np.float32)


def normalize_series(x: np.ndarray, x_test: np.ndarray | None, mode: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    """z-normalise (N, C, T) series: ``"series"``: each series and channel over time (a constant one becomes 0);
    ``"channel"``: each channel with the training set's mean and std (also for the test split); ``"none"``;
    ``"auto"``: series for C = 1, channel otherwise. Returns (x, x_test, a note saying what was done).

    >>> x = np.array([[[1.0, 3.0]], [[5.0, 5.0]]])
    >>> normalize_series(x, None, "series")[0].tolist()
    [[[-1.0, 1.0]], [[0.0, 0.0]]]
    """
    if mode not in NORMALIZE:
        raise ValueError(f"`normalize` must be one of {', '.join(NORMALIZE)}, got {mode!r}")
    if mode == "auto":
        mode = "series" if x.shape[1] == 1 else "channel"
    if mode == "none":
        return x, x_test, "not normalised"

    def scaled(a, mean, std):
        return ((a - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)
    if mode == "series":
        per = lambda a: scaled(a, a.mean(2, keepdims=True), a.std(2, keepdims=True))     # noqa: E731
        return per(x), None if x_test is None else per(x_test), "z-normalised per series and channel"
    mean, std = x.mean((0, 2), keepdims=True), x.std((0, 2), keepdims=True)              # (1, C, 1)
    return (scaled(x, mean, std), None if x_test is None else scaled(x_test, mean, std),
            "z-normalised per channel with the training set's mean and std")


def register_sequence_dataset(name: str, *, takes_path: bool = False, suffixes: tuple[str, ...] = (),
                              options: tuple[str, ...] = (), description: str = ""):
    """:func:`~contrastlab.data.registry.register_dataset` with ``modality="sequence"``; the loader is called as
    ``loader(path, root=root, **options)``."""
    return registry.register_dataset(name, modality="sequence", takes_path=takes_path, suffixes=suffixes,
                                     options=options, description=description)


def list_sequence_datasets() -> list[str]:
    return registry.list_datasets("sequence")


def load_sequences(spec: str, *, root: str | os.PathLike | None = None, **options) -> SequenceData:
    """Load a sequence dataset by spec: ``"ucr:NAME"`` (UCR/UEA data shipped in aeon's wheel) or
    ``"series:PATH.npz|.csv|.parquet"``; ``options`` are the loader's (``normalize=``, see :data:`NORMALIZE`)."""
    ds, path, root = registry.check_load(spec, root, options, "sequence")
    return ds.loader(path, root=root, **options)
