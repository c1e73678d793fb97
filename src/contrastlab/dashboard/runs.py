"""Reading a run directory while the trainer writes it (the contract: config.json, status.json,
metrics.jsonl, snapshots/probe.npz, snapshots/step-XXXXXXXX.npz, eval.json).

Everything is read defensively: a file that is missing, unreadable or half-written is reported as
such and never raises; a metrics line that does not parse is skipped (the last one may be partial);
a snapshot that cannot be read is "not there yet". ``.npz`` files are opened with
``allow_pickle=False``.

Two-modality runs (image-text, e.g. ``contrastlab train clip``) have two probe points per item: an
image and its name. Their probe.npz adds ``modality`` (N,) (0 image, 1 text) and ``pair`` (N,) (the
row of each point's partner), and holds one thumbnail per IMAGE point, in row order; each snapshot
embeds all N points in one space. Both arrays are checked (lengths, values, ``pair`` an involution
joining an image to a text); a bad one is dropped with a note and the run is shown as a plain one.

Runs are addressed by their index in the list the server was started with: nothing here turns a
client string into a path.

Example::

    >>> import tempfile, pathlib
    >>> from contrastlab.dashboard.runs import RunDir
    >>> RunDir(pathlib.Path(tempfile.mkdtemp()) / "nothing").summary()["state"]
    'missing'
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..train.rundir import RunDir as TrainingRun
from .maps import MapChains, MapStatus

__all__ = ["RunDir", "Probe", "SNAPSHOT_PATTERN", "STALE_SECONDS", "pair_cosine"]

#: Snapshot files: snapshots/step-<digits>.npz.
SNAPSHOT_PATTERN = re.compile(r"^step-(\d{1,12})\.npz$")
#: A "running" run whose status.json is older than this is flagged as possibly stopped.
STALE_SECONDS = 120.0
#: Largest piece of metrics.jsonl returned by one call.
METRICS_CHUNK = 4 * 2**20
#: Decoded snapshots kept in memory per run (the maps are kept for all).
EMBEDDING_CACHE = 2


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

    def thumbnails(self) -> np.ndarray | None:
        with np.load(self.path, allow_pickle=False) as f:
            return f["thumbnails"] if "thumbnails" in f.files else None


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


def _check_pairs(ids: np.ndarray, modality, pair) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """(modality, pair, note): the probe's two-modality arrays when they are sound; a bad one is None
    (pair needs a sound modality) and the note says why."""
    n = ids.shape[0]
    where = "snapshots/probe.npz"
    if modality is None:
        return None, None, (f"{where}: `pair` without `modality`: the pairs are not shown" if pair is not None
                            else None)
    if modality.dtype.kind not in "iub" or modality.shape != ids.shape:
        return None, None, (f"{where}: `modality` {modality.shape} {modality.dtype} does not match ids {ids.shape}: "
                            "the modalities are not shown")
    modality = modality.astype(np.int8)
    if not np.isin(modality, (0, 1)).all():
        return None, None, f"{where}: `modality` must be 0 (image) or 1 (text): the modalities are not shown"
    if pair is None:
        return modality, None, f"{where}: `modality` without `pair`: the pairs are not shown"
    if pair.dtype.kind not in "iu" or pair.shape != ids.shape:
        return modality, None, (f"{where}: `pair` {pair.shape} {pair.dtype} does not match ids {ids.shape}: "
                                "the pairs are not shown")
    pair = pair.astype(np.int64)
    rows = np.arange(n)
    if ((pair < 0) | (pair >= n)).any() or (pair[pair.clip(0, max(n - 1, 0))] != rows).any() or (pair == rows).any():
        return modality, None, (f"{where}: `pair` must join each point to another one that points back "
                                f"(0 <= pair[i] < {n}, pair[pair[i]] == i): the pairs are not shown")
    if (modality[pair] == modality).any():
        return modality, None, f"{where}: `pair` joins points of the same modality: the pairs are not shown"
    return modality, pair, None


def _optional_array(f, key: str) -> np.ndarray | None:
    """``f[key]`` flattened, None if absent; an object array (never unpickled) is an empty object array."""
    if key not in f.files:
        return None
    try:
        return np.asarray(f[key]).ravel()
    except ValueError:
        return np.empty(0, object)


def _finite_or_none(constant: str):
    return None                                                  # NaN / Infinity in a JSON file -> null


def _read_json(path: Path):
    """The parsed JSON object in ``path``, or None if missing, unreadable or not an object."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f, parse_constant=_finite_or_none)
    except (OSError, ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


class RunDir:
    """One run directory, read live. Thread-safe (the server calls it from its thread pool)."""

    def __init__(self, path: Path):
        self.path = Path(path).expanduser().absolute()
        self.name = self.path.name or str(self.path)
        self._lock = threading.RLock()                           # small caches
        self._probe: tuple | None = None                         # ((mtime, size), Probe | None, note)
        self._embeddings: OrderedDict = OrderedDict()            # (file, mtime, size) -> (step, time, array)
        self.maps = MapChains(self.snapshot_files, self._snapshot_key, self._load_snapshot)   # the 2-D maps
        self._thumbs = None                                      # (key, array)
        self._pair_cos: dict = {}                                # (file, mtime, size) -> mean pair cosine

    # ---------------------------------------------------------------- listing
    def snapshot_files(self) -> list[tuple[int, str]]:
        """(step, file name) of every snapshot file present, by step (readable or not)."""
        try:
            names = os.listdir(self.path / "snapshots")
        except OSError:
            return []
        found = [(int(m.group(1)), name) for name in names if (m := SNAPSHOT_PATTERN.match(name))]
        return sorted(found)

    def summary(self) -> dict:
        """State, status, config, snapshot list and notes; cheap enough to poll every second."""
        if not self.path.exists():
            return {"name": self.name, "path": str(self.path), "state": "missing", "notes": [
                "the directory does not exist (yet)"], "snapshots": [], "config": None, "status": None,
                "eval": None, "probe": None, "metrics_bytes": 0}
        notes = []
        config = _read_json(self.path / "config.json")
        status = TrainingRun(self.path).read_status()          # a dead trainer's "running" reads as "stopped"
        evaluation = _read_json(self.path / "eval.json")
        snaps = self.snapshot_files()
        try:
            metrics_bytes = (self.path / "metrics.jsonl").stat().st_size
        except OSError:
            metrics_bytes = 0
        probe, probe_note = self.probe()
        if probe_note:
            notes.append(probe_note)
        if status is not None and isinstance(status.get("state"), str):
            state = status["state"]
            updated = status.get("updated")
            if state == "running" and isinstance(updated, (int, float)) and time.time() - updated > STALE_SECONDS:
                notes.append(f"no status update for {time.time() - updated:.0f} s: the trainer may have stopped")
            elif state == "stopped":
                notes.append(status["reason"])
        elif config is None and not snaps and metrics_bytes == 0 and probe is None:
            state = "empty"
            notes.append("the directory has no run files yet")
        else:
            state = "unknown"
            notes.append("status.json is missing or unreadable")
        if (self.path / "config.json").exists() and config is None:
            notes.append("config.json is unreadable")
        return {"name": self.name, "path": str(self.path), "state": state, "status": status, "config": config,
                "eval": evaluation, "notes": notes, "metrics_bytes": metrics_bytes,
                "snapshots": [{"index": i, "step": step} for i, (step, _) in enumerate(snaps)],
                "probe": None if probe is None else {
                    "count": int(probe.ids.shape[0]), "classes": probe.classes,
                    "labelled": bool((probe.labels >= 0).any()), "thumbnail_shape": probe.thumbnail_shape,
                    "texts": probe.texts, **self._pair_info(probe)}}

    @staticmethod
    def _pair_info(probe: Probe) -> dict:
        """Two-modality runs: the modality and partner of every point and the counts; nothing otherwise."""
        if probe.modality is None:
            return {}
        return {"modality": probe.modality.tolist(), "pair": None if probe.pair is None else probe.pair.tolist(),
                "images": int((probe.modality == 0).sum()), "text_points": int((probe.modality == 1).sum())}

    # ---------------------------------------------------------------- metrics
    def metrics(self, offset: int = 0) -> dict:
        """Complete lines of metrics.jsonl from byte ``offset``: records, the next offset, and the count
        of lines that did not parse. A last line without its newline is left for the next call."""
        path = self.path / "metrics.jsonl"
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                restart = offset > size                                     # the file was replaced
                if restart:
                    offset = 0
                f.seek(offset)
                chunk = f.read(METRICS_CHUNK)
        except OSError:
            return {"records": [], "offset": 0, "skipped": 0, "restart": offset > 0}
        end = chunk.rfind(b"\n") + 1                                         # only whole lines
        records, skipped = [], 0
        for line in chunk[:end].splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line, parse_constant=_finite_or_none)
            except (ValueError, RecursionError):
                skipped += 1
                continue
            if isinstance(obj, dict):
                records.append(obj)
            else:
                skipped += 1
        return {"records": records, "offset": offset + end, "skipped": skipped, "restart": restart}

    # ------------------------------------------------------------------ probe
    def probe(self) -> tuple[Probe | None, str | None]:
        """The probe subset (cached until the file changes) and a note when it is missing or bad."""
        path = self.path / "snapshots" / "probe.npz"
        try:
            st = path.stat()
        except OSError:
            return None, "snapshots/probe.npz is not there yet: no labels or thumbnails (points shown grey)"
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if self._probe is not None and self._probe[0] == key:
                return self._probe[1], self._probe[2]
            probe, note = self._load_probe(path)
            self._probe = (key, probe, note)
            self._thumbs = None
            self._pair_cos = {}
            return probe, note

    @staticmethod
    def _load_probe(path: Path) -> tuple[Probe | None, str | None]:
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
                        note = (f"snapshots/probe.npz: {t.shape[0] if t.ndim else 0} thumbnails for {owners.size} "
                                "image points: the thumbnails are not shown")
                texts = None
                if "texts" in f.files:
                    t = f["texts"]
                    if t.dtype.kind == "U" and t.shape == ids.shape:
                        texts = [str(x)[:300] for x in t]
        except Exception as e:  # noqa: BLE001 - a half-written or foreign file must never break the view
            return None, f"snapshots/probe.npz is unreadable ({type(e).__name__}): not there yet?"
        if labels.shape != ids.shape:
            return None, f"snapshots/probe.npz: labels {labels.shape} do not match ids {ids.shape}"
        return Probe(ids, labels, classes, thumb_shape, path, texts, modality, pair, thumb_rows), note

    def thumbnail(self, index: int) -> np.ndarray | None:
        """The thumbnail (h, w, C) uint8 of probe POINT ``index``, or None (none there, or a text point of
        a two-modality run)."""
        probe, _ = self.probe()
        if probe is None or probe.thumbnail_rows is None or not 0 <= index < probe.ids.shape[0]:
            return None
        row = int(probe.thumbnail_rows[index])
        arr = self.thumbnails()
        return None if arr is None or row < 0 else arr[row]

    def thumbnails(self) -> np.ndarray | None:
        """All the probe's thumbnails (T, h, w, C) uint8 in row order (T: one per point, or one per image
        point of a two-modality run), or None."""
        probe, _ = self.probe()
        if probe is None or probe.thumbnail_shape is None:
            return None
        with self._lock:
            if self._thumbs is None or self._thumbs[0] is not probe:
                try:
                    arr = probe.thumbnails()
                except Exception:  # noqa: BLE001 - replaced under us: not there now
                    return None
                if arr is None or arr.shape[1:] != probe.thumbnail_shape or arr.dtype != np.uint8:
                    return None
                self._thumbs = (probe, arr)
            return self._thumbs[1]

    # -------------------------------------------------------------- snapshots
    def embeddings(self, index: int) -> tuple[int, float, np.ndarray] | None:
        """(step, time, embeddings (P, D) float32) of snapshot ``index``, or None if it cannot be read
        (yet) or does not match the probe."""
        files = self.snapshot_files()
        if not 0 <= index < len(files):
            return None
        return self._load_snapshot(files[index])

    def _snapshot_key(self, entry) -> tuple | None:
        """(name, mtime, size) of a snapshot entry: a rewritten file gets a new key; None if it is gone."""
        try:
            st = (self.path / "snapshots" / entry[1]).stat()
        except OSError:
            return None
        return (entry[1], st.st_mtime_ns, st.st_size)

    def _load_snapshot(self, entry) -> tuple[int, float, np.ndarray] | None:
        step, name = entry
        path = self.path / "snapshots" / name
        try:
            st = path.stat()
        except OSError:
            return None
        key = (name, st.st_mtime_ns, st.st_size)
        with self._lock:
            if key in self._embeddings:
                self._embeddings.move_to_end(key)
                return self._embeddings[key]
        probe, _ = self.probe()
        try:
            with np.load(path, allow_pickle=False) as f:
                emb = np.asarray(f["embeddings"], np.float32)
                s = int(f["step"]) if "step" in f.files else step
                t = float(f["time"]) if "time" in f.files else math.nan
        except Exception:  # noqa: BLE001 - partial file: not there yet
            return None
        if emb.ndim != 2 or emb.shape[0] == 0 or (probe is not None and emb.shape[0] != probe.ids.shape[0]):
            return None
        if not np.isfinite(emb).all():
            emb = np.nan_to_num(emb, nan=0.0, posinf=0.0, neginf=0.0)
        value = (s, t, emb)
        with self._lock:
            self._embeddings[key] = value
            while len(self._embeddings) > EMBEDDING_CACHE:
                self._embeddings.popitem(last=False)
        return value

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
            st = (self.path / "snapshots" / name).stat()
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
