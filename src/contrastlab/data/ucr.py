"""UCR/UEA time-series classification datasets: ``"ucr:NAME"``, read from the ``.ts`` files that aeon's wheel
ships (``pip install --no-deps aeon==1.6.0``: aeon is never imported, so none of its dependencies are needed), or
from ``root`` (a folder holding ``NAME/NAME_TRAIN.ts`` and ``NAME/NAME_TEST.ts``, or the two files).

The train/test split is the archive's own. aeon 1.6.0 ships ArrowHead, ItalyPowerDemand, OSULeaf, GunPoint,
BasicMotions (UEA, 6 channels), and JapaneseVowels and PickupGestureWiimoteZ, whose series have unequal lengths and
are refused (use ``ucr:JapaneseVowels_eq`` / ``ucr:PickupGestureWiimoteZ_eq``, the equal-length versions shipped
beside them). Option ``normalize`` (default ``"auto"``, see :data:`~contrastlab.data.sequences.NORMALIZE`).

Example::

    >>> from contrastlab.data import load_sequences
    >>> data = load_sequences("ucr:ItalyPowerDemand")                     # doctest: +SKIP
    >>> data, data.classes                                                 # doctest: +SKIP
    (SequenceData(name='ucr:ItalyPowerDemand', x=(67, 1, 24), test=1029, classes=2), ('1', '2'))
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

from .sequences import SequenceData, normalize_series, register_sequence_dataset, rows_to_series

__all__ = ["read_ts", "load_ucr", "ucr_folder", "list_ucr"]

AEON_HINT = "pip install --no-deps aeon==1.6.0 (its wheel ships the .ts files), or pass root= a folder of .ts files"


def ucr_folder() -> Path | None:
    """aeon's shipped data folder, found without importing aeon; None when aeon is not installed."""
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return folder if folder.is_dir() else None


def list_ucr(root: str | None = None) -> list[str]:
    """The dataset names with both a _TRAIN.ts and a _TEST.ts file under `root` (default: aeon's data folder)."""
    folder = Path(root) if root is not None else ucr_folder()
    if folder is None or not folder.is_dir():
        return []
    found = {p.name[:-len("_TRAIN.ts")] for p in folder.rglob("*_TRAIN.ts")}
    return sorted(n for n in found if any(folder.rglob(f"{n}_TEST.ts")) and not n.startswith("UnitTest"))


def read_ts(path) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...] | None]:
    """One ``.ts`` file: (x (N, C, T) float32, labels as str (N,) or None, the header's class names or None).
    Channels of a row are separated by ':' and the label comes last; a missing value ('?') is refused as NaN."""
    p = Path(path)
    labelled, classes, rows, labels, first = False, None, [], [], None
    with open(p, encoding="utf-8", errors="replace") as f:
        in_data = False
        for no, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                low = line.lower()
                if low.startswith("@classlabel"):
                    words = line.split()
                    labelled = len(words) > 1 and words[1].lower() == "true"
                    classes = tuple(words[2:]) if labelled else None
                elif low.startswith("@timestamps") and line.split()[-1].lower() == "true":
                    raise ValueError(f"{p}: time-stamped .ts files are not supported")
                elif low.startswith("@data"):
                    in_data = True
                continue
            parts = line.split(":")
            if labelled:
                labels.append(parts[-1].strip())
                parts = parts[:-1]
            if first is None:
                first = no
            try:
                rows.append([[float(v) if v.strip() != "?" else np.nan for v in ch.split(",") if v.strip()]
                             for ch in parts])
            except ValueError as e:
                raise ValueError(f"{p}: line {no} (row {len(rows)}) holds a value that is not a number ({e})") from None
    if not rows:
        raise ValueError(f"{p}: no series after @data")
    for i, r in enumerate(rows):
        if len(set(map(len, r))) > 1:
            raise ValueError(f"{p}: row {i} has channels of unequal length ({sorted(set(map(len, r)))} time steps)")
    lengths = [len(r[0]) for r in rows]
    if all(n > 0 for n in lengths) and len(set(lengths)) > 1 and len({len(r) for r in rows}) == 1:
        i = next(i for i, n in enumerate(lengths) if n != lengths[0])
        raise ValueError(f"{p}: series of unequal length ({min(lengths)} to {max(lengths)} time steps; row {i} has "
                         f"{lengths[i]}, row 0 has {lengths[0]}) are not padded; use an equal-length version "
                         f"(aeon ships NAME_eq for JapaneseVowels and PickupGestureWiimoteZ) or resample them")
    x = rows_to_series([np.array(r) for r in rows], str(p))
    return x, (np.array(labels) if labelled else None), classes


def _files(name: str, root: str | None) -> tuple[Path, Path]:
    folder = Path(os.path.expanduser(root)) if root is not None else ucr_folder()
    if folder is None:
        raise FileNotFoundError(f"ucr:{name}: the UCR/UEA .ts files were not found; {AEON_HINT}")
    for base in (folder / name, folder, folder / name.split("_eq")[0]):
        train, test = base / f"{name}_TRAIN.ts", base / f"{name}_TEST.ts"
        if train.is_file() and test.is_file():
            return train, test
    lower = {n.lower(): n for n in list_ucr(str(folder))}
    if name.lower() in lower and lower[name.lower()] != name:
        return _files(lower[name.lower()], root)
    raise FileNotFoundError(f"ucr:{name}: no {name}_TRAIN.ts and {name}_TEST.ts under {folder}; available: "
                            f"{', '.join(list_ucr(str(folder))) or 'none'}")


def _codes(labels: np.ndarray, classes: tuple[str, ...], path: Path) -> np.ndarray:
    where = {c: i for i, c in enumerate(classes)}
    unknown = [(i, v) for i, v in enumerate(labels) if v not in where]
    if unknown:
        raise ValueError(f"{path}: row {unknown[0][0]} has label {str(unknown[0][1])!r}, not one of the header's "
                         f"@classLabel {list(classes)}")
    return np.array([where[v] for v in labels], dtype=np.int64)


@register_sequence_dataset("ucr", takes_path=True, options=("normalize",),
                           description="UCR/UEA .ts datasets shipped in aeon's wheel (ucr:ArrowHead, ucr:GunPoint, "
                                       "ucr:BasicMotions, ...), train/test splits as shipped")
def load_ucr(path: str, *, root: str | None = None, normalize: str = "auto") -> SequenceData:
    """``ucr:NAME`` as :class:`SequenceData` with the archive's train/test split."""
    train, test = _files(path.strip(), root)
    x, y, classes = read_ts(train)
    x_test, y_test, classes_test = read_ts(test)
    if x_test.shape[1:] != x.shape[1:]:
        raise ValueError(f"{test}: series of shape (C, T) = {x_test.shape[1:]}, the training file's are {x.shape[1:]}")
    if (y is None) != (y_test is None):
        raise ValueError(f"{train} and {test}: labels in one file only (labels are all or nothing)")
    name = train.name[:-len("_TRAIN.ts")]
    x, x_test, note = normalize_series(x, x_test, normalize)
    t = torch.from_numpy
    yy = yt = None
    if y is not None:
        classes = classes or tuple(sorted(set(y.tolist()) | set(y_test.tolist())))
        yy, yt = t(_codes(y, classes, train)), t(_codes(y_test, classes, test))
    return SequenceData(f"ucr:{name}", t(x), yy, t(x_test), yt, classes if y is not None else None,
                        (f"train/test split of {train.name} / {test.name}", note))
