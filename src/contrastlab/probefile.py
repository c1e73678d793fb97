"""The probe file, RUN/snapshots/probe.npz: the fixed subset whose embeddings a run snapshots, as
`contrastlab.rundir.RunDir` writes and reads it.

    ids (P,) int64, labels (P,) int64 (-1: none), classes (K,) str        every run
    thumbnails (T, h, w, C) uint8                                         image runs (T = P), image-text (T = images)
    texts (P,) str                                                        text runs; image-text: each point's name
    modality (P,) int8 (0 image, 1 text), pair (P,) int64                 image-text runs (two points per item)
    series (P, C, L) float32                                              sequence runs: each point's series, cut
                                                                          to at most SERIES_POINTS steps for plotting

Reading is defensive: an array that is missing, foreign or inconsistent is dropped with a note and the rest of the
probe still reads; files are opened with ``allow_pickle=False``.

>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> f = Path(tempfile.mkdtemp()) / "probe.npz"
>>> np.savez(f, ids=np.arange(3), labels=np.array([0, 1, 0]), classes=np.array(["a", "b"]),
...          series=np.zeros((3, 1, 8), np.float32))
>>> probe, note = load_probe(f); probe.series_shape, note
((1, 8), None)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Probe", "load_probe", "plot_series", "SERIES_POINTS"]

#: The most time steps per channel a probe keeps for the hover plot (longer series are averaged into bins).
SERIES_POINTS = 256
WHERE = "snapshots/probe.npz"


@dataclass
class Probe:
    """The fixed probe subset: ids (P,), labels (P,) (-1 = unlabelled), class names, thumbnails."""
    ids: np.ndarray
    labels: np.ndarray
    classes: list[str]
    thumbnail_shape: tuple | None
    path: Path
    texts: list[str] | None = None            # text runs: the probe queries (shown on hover), cut to 300 chars
    modality: np.ndarray | None = None        # two-modality runs: (P,) int8, 0 image / 1 text
    pair: np.ndarray | None = None            # two-modality runs: (P,) int64, the row of each point's partner
    thumbnail_rows: np.ndarray | None = None  # (P,) int64: the thumbnail row of each point, -1 for none
    series_shape: tuple | None = None         # sequence runs: (C, L) of each point's plotted series

    def array(self, name: str) -> np.ndarray | None:
        """The probe file's array ``name`` ("thumbnails", "series"), read now; None if the file has none."""
        with np.load(self.path, allow_pickle=False) as f:
            return f[name] if name in f.files else None


def plot_series(x) -> np.ndarray:
    """Series (P, C, T) cut to at most `SERIES_POINTS` steps for a small plot: each channel averaged over
    equal bins (``T <= SERIES_POINTS``: unchanged), as float32.

    >>> plot_series(np.arange(1024, dtype=np.float64).reshape(1, 1, 1024)).shape
    (1, 1, 256)
    >>> plot_series(np.arange(4.0).reshape(1, 1, 4)).tolist()
    [[[0.0, 1.0, 2.0, 3.0]]]
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 3:
        raise ValueError(f"`x` must have shape (P, C, T), got {x.shape}")
    t = x.shape[2]
    if t <= SERIES_POINTS:
        return x.astype(np.float32)
    edges = np.linspace(0, t, SERIES_POINTS + 1).round().astype(np.int64)     # bins of floor/ceil(T / L) steps
    sums = np.add.reduceat(x, edges[:-1], axis=2)                             # (P, C, L)
    return (sums / np.diff(edges)).astype(np.float32)


def load_probe(path: Path) -> tuple[Probe | None, str | None]:
    """The probe in ``path`` and a note on what could not be read (None: all of it); (None, note) when the file
    is missing a sound ``ids``/``labels`` or cannot be read at all."""
    try:
        with np.load(path, allow_pickle=False) as f:
            ids = np.asarray(f["ids"]).astype(np.int64).ravel()
            labels = np.asarray(f["labels"]).astype(np.int64).ravel() if "labels" in f.files else \
                np.full(ids.shape, -1, np.int64)
            try:
                classes = [str(c) for c in f["classes"].ravel()] if "classes" in f.files else []
            except ValueError:                                          # an object array: never unpickled
                classes = []
            modality, pair, note = _check_pairs(ids, _optional_array(f, "modality"), _optional_array(f, "pair"))
            # thumbnails: one per point, or in a two-modality run one per image point (in row order)
            owners = np.arange(ids.shape[0]) if modality is None else np.nonzero(modality == 0)[0]
            thumb_shape, thumb_rows = None, None
            if "thumbnails" in f.files:
                t = f["thumbnails"]
                if t.ndim == 4 and t.dtype == np.uint8 and t.shape[3] in (1, 3, 4) and t.shape[0] == owners.size:
                    thumb_shape = tuple(int(s) for s in t.shape[1:])
                    thumb_rows = np.full(ids.shape, -1, np.int64)
                    thumb_rows[owners] = np.arange(owners.size)
                elif modality is not None and note is None:
                    note = (f"{WHERE}: {t.shape[0] if t.ndim else 0} thumbnails for {owners.size} "
                            "image points: the thumbnails are not shown")
            texts = None
            if "texts" in f.files:
                t = f["texts"]
                if t.dtype.kind == "U" and t.shape == ids.shape:
                    texts = [str(x)[:300] for x in t]
            series_shape = None
            if "series" in f.files:
                series_shape, series_note = _series_shape(f["series"], ids.shape[0])
                note = note or series_note
    except Exception as e:  # noqa: BLE001 - a half-written or foreign file must never break the view
        return None, f"{WHERE} is unreadable ({type(e).__name__}): not there yet?"
    if labels.shape != ids.shape:
        return None, f"{WHERE}: labels {labels.shape} do not match ids {ids.shape}"
    return Probe(ids, labels, classes, thumb_shape, path, texts, modality, pair, thumb_rows, series_shape), note


def _check_pairs(ids: np.ndarray, modality, pair) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """(modality, pair, note): the probe's two-modality arrays when they are sound; a bad one is None
    (pair needs a sound modality) and the note says why."""
    n = ids.shape[0]
    if modality is None:
        return None, None, (f"{WHERE}: `pair` without `modality`: the pairs are not shown" if pair is not None
                            else None)
    if modality.dtype.kind not in "iub" or modality.shape != ids.shape:
        return None, None, (f"{WHERE}: `modality` {modality.shape} {modality.dtype} does not match ids {ids.shape}: "
                            "the modalities are not shown")
    modality = modality.astype(np.int8)
    if not np.isin(modality, (0, 1)).all():
        return None, None, f"{WHERE}: `modality` must be 0 (image) or 1 (text): the modalities are not shown"
    if pair is None:
        return modality, None, f"{WHERE}: `modality` without `pair`: the pairs are not shown"
    if pair.dtype.kind not in "iu" or pair.shape != ids.shape:
        return modality, None, (f"{WHERE}: `pair` {pair.shape} {pair.dtype} does not match ids {ids.shape}: "
                                "the pairs are not shown")
    pair = pair.astype(np.int64)
    rows = np.arange(n)
    if ((pair < 0) | (pair >= n)).any() or (pair[pair.clip(0, max(n - 1, 0))] != rows).any() or (pair == rows).any():
        return modality, None, (f"{WHERE}: `pair` must join each point to another one that points back "
                                f"(0 <= pair[i] < {n}, pair[pair[i]] == i): the pairs are not shown")
    if (modality[pair] == modality).any():
        return modality, None, f"{WHERE}: `pair` joins points of the same modality: the pairs are not shown"
    return modality, pair, None


def _optional_array(f, key: str) -> np.ndarray | None:
    """``f[key]`` flattened, None if absent; an object array (never unpickled) is an empty object array."""
    if key not in f.files:
        return None
    try:
        return np.asarray(f[key]).ravel()
    except ValueError:
        return np.empty(0, object)


def _series_shape(s: np.ndarray, points: int) -> tuple[tuple | None, str | None]:
    """((C, L), None) when ``series`` is a finite float (P, C, L) array with one row per point, else (None, note)."""
    if s.dtype.kind != "f" or s.ndim != 3 or s.shape[0] != points or 0 in s.shape[1:]:
        return None, (f"{WHERE}: `series` {s.shape} {s.dtype} is not (P={points}, C, L) floats: the series are not "
                      "shown")
    if not np.isfinite(s).all():
        return None, f"{WHERE}: `series` holds NaN or inf: the series are not shown"
    return (int(s.shape[1]), int(s.shape[2])), None
