"""A run directory shown live: `RunView` adds the dashboard's views of a run (2-D maps of the snapshots, nearest
probe points, the image-name cosine of two-modality runs) to the one reader and writer of a run directory,
`contrastlab.rundir.RunDir` (summary, metrics, probe, thumbnails, snapshots: read defensively, never raising).

Runs are addressed by their index in the list the server was started with: nothing here turns a
client string into a path.

Example::

    >>> import tempfile, pathlib
    >>> from contrastlab.dashboard.runs import RunView
    >>> RunView(pathlib.Path(tempfile.mkdtemp()) / "nothing").summary()["state"]
    'missing'
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..rundir import SNAPSHOT_PATTERN, STALE_SECONDS, Probe, RunDir
from .maps import MapChains, MapStatus

__all__ = ["RunView", "Probe", "SNAPSHOT_PATTERN", "STALE_SECONDS", "pair_cosine"]


def pair_cosine(embeddings: np.ndarray, modality: np.ndarray, pair: np.ndarray) -> float:
    """The mean cosine similarity between each image point and its partner (each pair counted once).

    Shape: embeddings (P, E), modality (P,) (0 image, 1 text), pair (P,) the partner rows; a float.
    """
    images = np.nonzero(modality == 0)[0]
    if images.size == 0:
        return math.nan
    a = embeddings[images].astype(np.float64)
    b = embeddings[pair[images]].astype(np.float64)
    norms = (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)).clip(min=1e-12)
    return float(((a * b).sum(1) / norms).mean())


class RunView(RunDir):
    """One run directory, read live, with its maps. Thread-safe (the server calls it from its thread pool)."""

    def __init__(self, path: Path):
        super().__init__(Path(path).expanduser().absolute())
        self.maps = MapChains(self.snapshot_files, self._snapshot_key, self._load_snapshot)   # the 2-D maps

    def projection(self, index: int, *, method: str = "pca") -> tuple[int, float, np.ndarray] | None:
        """(step, time, 2-D map (P, 2) float32) of snapshot ``index``, aligned with the maps of the
        snapshots before it (computed in order once, then cached); None if it cannot be read yet.
        Waits for a slow method (see :meth:`map_status` for one that does not); raises ValueError when
        the projection fails."""
        status = self.maps.status(index, method, wait=True)
        if status is None or status.state == "unreadable":
            return None
        if status.state == "error":
            raise ValueError(status.message)
        return status.step, status.time, status.xy

    def map_status(self, index: int, *, method: str = "pca") -> MapStatus | None:
        """The map of snapshot ``index`` if it is ready, else its progress (t-SNE and UMAP are computed in
        the background); None if there is no such snapshot."""
        return self.maps.status(index, method)

    def pair_cosine(self, index: int) -> float | None:
        """The mean cosine between the embeddings of each image and its name in snapshot ``index``
        (two-modality runs), or None (no pairs, or the snapshot cannot be read)."""
        probe, _ = self.probe()
        files = self.snapshot_files()
        if probe is None or probe.pair is None or not 0 <= index < len(files):
            return None
        name = files[index][1]
        try:
            st = (self.snapshots / name).stat()
        except OSError:
            return None
        key = (name, st.st_mtime_ns, st.st_size)
        with self._lock:
            if key in self._pair_cos:
                return self._pair_cos[key]
        snap = self._load_snapshot(files[index])
        if snap is None:
            return None
        value = pair_cosine(snap[2], probe.modality, probe.pair)
        with self._lock:
            if len(self._pair_cos) > 4096:
                self._pair_cos.clear()
            self._pair_cos[key] = value
        return value

    def neighbours(self, index: int, point: int, *, count: int = 10) -> list[dict] | None:
        """The ``count`` nearest probe points to ``point`` by cosine similarity in snapshot ``index``."""
        snap = self.embeddings(index)
        probe, _ = self.probe()
        if snap is None or not 0 <= point < snap[2].shape[0]:
            return None
        emb = snap[2]
        norms = np.linalg.norm(emb, axis=1).clip(min=1e-12)
        sims = emb @ emb[point] / (norms * norms[point])                         # (P,)
        sims[point] = -np.inf
        k = min(count, emb.shape[0] - 1)
        top = np.argpartition(-sims, k - 1)[:k] if k > 0 else np.array([], np.int64)
        top = top[np.argsort(-sims[top])]
        out = []
        for j in top.tolist():
            label = int(probe.labels[j]) if probe is not None else -1
            cls = probe.classes[label] if probe is not None and 0 <= label < len(probe.classes) else None
            entry = {"point": j, "id": int(probe.ids[j]) if probe is not None else j, "label": label,
                     "class": cls, "cos": float(sims[j])}
            if probe is not None and probe.modality is not None:
                entry["modality"] = int(probe.modality[j])
            out.append(entry)
        return out
