"""The run directory: its layout, and the one class that writes and reads it (`RunDir`).

    RUN/config.json               the full configuration (enough to rebuild and resume the run) and the run's id
    RUN/status.json               {"state", "step", "total_steps", "updated", "pid", "host"}, rewritten atomically
    RUN/metrics.jsonl             one JSON object per line: kind "train" (loss, lr, throughput) or "monitor"
    RUN/tokenizer.json            a text or image-text run's fitted tokenizer
    RUN/model/                    an st:/hf: text run's model folder as it started (config, tokenizer, weights):
                                  the run rebuilds from it offline, the trained weights then come from the checkpoint
    RUN/snapshots/probe.npz       ids, labels, class names and thumbnails, texts or series of the fixed probe
                                  subset (its format: `contrastlab.probefile`)
    RUN/snapshots/step-XXXXXXXX.npz   L2-normalised probe embeddings at that step
    RUN/checkpoints/last.pt       the latest checkpoint (atomic: write-then-rename)
    RUN/eval.json                 the offline evaluation

These names are spelled here only. This module sits low (beside `contrastlab.io`): the trainer writes through it,
and the layers above it read through it (`contrastlab.runs.load_run` rebuilds the model, the dashboard shows a run
live). Readers are defensive: a file that is missing, unreadable or half-written reads as "not there (yet)" and never
raises; a metrics line that does not parse is skipped; ``.npz`` files are opened with ``allow_pickle=False``.

Two-modality runs (image-text, e.g. ``contrastlab train clip``) have two probe points per item: an image and its
name. Their probe.npz adds ``modality`` (N,) (0 image, 1 text) and ``pair`` (N,) (the row of each point's partner),
and holds one thumbnail per IMAGE point, in row order. Both arrays are checked (lengths, values, ``pair`` an
involution joining an image to a text); a bad one is dropped with a note and the run reads as a plain one.

>>> import tempfile
>>> run = RunDir(tempfile.mkdtemp())
>>> run.append_metric({"kind": "train", "step": 1, "loss": 2.0}); run.metrics()[0]["loss"]
2.0
>>> run.read_metrics(0)["records"][0]["step"], RunDir(run.path / "nothing").summary()["state"]
(1, 'missing')
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .io import append_jsonl, atomic_write_bytes, read_json, read_jsonl, remove_stale_temporaries, write_json
from .probefile import Probe, load_probe, plot_series
from .processes import pid_alive

__all__ = ["RunDir", "RunInUse", "Probe", "CONFIG", "STATUS", "METRICS", "TOKENIZER", "MODEL", "EVAL",
           "SNAPSHOTS", "CHECKPOINTS", "PROBE", "LAST_CHECKPOINT", "SNAPSHOT_PATTERN", "STALE_SECONDS"]

# -- the layout ---------------------------------------------------------------------------------------------------
CONFIG = "config.json"
STATUS = "status.json"
METRICS = "metrics.jsonl"
TOKENIZER = "tokenizer.json"
MODEL = "model"
EVAL = "eval.json"
SNAPSHOTS = "snapshots"
CHECKPOINTS = "checkpoints"
PROBE = "probe.npz"
LAST_CHECKPOINT = "last.pt"
#: Snapshot files: snapshots/step-<digits>.npz.
SNAPSHOT_PATTERN = re.compile(r"^step-(\d{1,12})\.npz$")
#: A "running" run whose status.json is older than this is flagged as possibly stopped.
STALE_SECONDS = 120.0
#: Largest piece of metrics.jsonl returned by one call.
METRICS_CHUNK = 4 * 2**20
#: Decoded snapshots kept in memory per run.
EMBEDDING_CACHE = 2


class RunInUse(RuntimeError):
    """Another live process is training in this run directory."""


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
    """One run directory: the trainer writes it (create, status, metrics, probe, snapshots, checkpoints, eval) and
    everything else reads it (the dashboard live, `contrastlab.runs.load_run`, search, export). The readers never
    raise on a missing, unreadable or half-written file; reading is thread-safe (the dashboard's thread pool)."""

    def __init__(self, path):
        self.path = Path(path)
        self.snapshots = self.path / SNAPSHOTS
        self.checkpoints = self.path / CHECKPOINTS
        self._lock = threading.RLock()                           # small caches
        self._probe: tuple | None = None                         # ((mtime, size), Probe | None, note)
        self._embeddings: OrderedDict = OrderedDict()            # (file, mtime, size) -> (step, time, array)
        self._arrays: dict = {}                                  # "thumbnails" / "series" -> (probe, array)
        self._pair_cos: dict = {}                                # (file, mtime, size) -> a value derived from one

    @property
    def name(self) -> str:
        return self.path.name or str(self.path)

    # -- files ---------------------------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / CONFIG

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / LAST_CHECKPOINT

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS

    @property
    def status_file(self) -> Path:
        return self.path / STATUS

    @property
    def eval_file(self) -> Path:
        return self.path / EVAL

    @property
    def tokenizer_file(self) -> Path:
        return self.path / TOKENIZER

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL

    @property
    def probe_file(self) -> Path:
        return self.snapshots / PROBE

    def snapshot_file(self, step: int) -> Path:
        return self.snapshots / f"step-{step:08d}.npz"

    def exists(self) -> bool:
        return self.config_file.exists()

    def check_writable(self, what: str = "--run") -> None:
        """A clear error where the run directory cannot be one (a file, or a folder under a file)."""
        for p in (self.path, *self.path.parents):
            if p.exists():
                if not p.is_dir():
                    raise ValueError(f"`{what}` must be a directory (or a path to create one), got {self.path}"
                                     + ("" if p == self.path else f", which lies under the file {p}")
                                     + (": it is a file" if p == self.path else ""))
                return

    def writer(self) -> int | None:
        """The pid of the live process on this machine that last wrote the status, if it is still running."""
        try:
            status = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return None
        pid = status.get("pid") if isinstance(status, dict) else None
        if not isinstance(pid, int) or status.get("host") != socket.gethostname() or pid == os.getpid():
            return None
        return pid if pid_alive(pid) and status.get("state") == "running" else None

    def check_not_in_use(self) -> None:
        pid = self.writer()
        if pid is not None:
            raise RunInUse(f"run directory {self.path} is being trained by process {pid} on this machine; stop it "
                           f"(or let it finish) before resuming or restarting it")

    def started(self) -> bool:
        """Whether the run wrote a checkpoint: a run killed before its first one holds nothing worth keeping."""
        return self.last_checkpoint.exists()

    def create(self, config: dict) -> bool:
        """Create the run directory with ``config`` (a new run id is added). A directory that holds a run which was
        stopped before its first checkpoint is cleared and reused; returns True when that happened."""
        replaced = False
        if self.exists():
            if self.started():
                raise FileExistsError(f"run directory {self.path} already holds a run; resume it with "
                                      f"`contrastlab train --resume {self.path}` or choose another --run")
            self.check_not_in_use()
            self.clear()
            replaced = True
        self.snapshots.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        write_json(self.config_file, {**config, "run_id": uuid.uuid4().hex})
        return replaced

    def clear(self, *, tokenizer: bool = False) -> None:
        """Remove what a run that stopped before its first checkpoint wrote, so it can start over (``tokenizer``:
        its fitted tokenizer and its copy of an st:/hf: model too, before the new run builds its own). config.json
        stays until `create` replaces it atomically: a kill in between still leaves a run that restarts."""
        for name in (METRICS, STATUS, EVAL, *((TOKENIZER,) if tokenizer else ())):
            (self.path / name).unlink(missing_ok=True)
        if tokenizer:                                            # the model folder an st:/hf: run copied in
            shutil.rmtree(self.model_dir, ignore_errors=True)
        shutil.rmtree(self.snapshots, ignore_errors=True)
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        self.remove_temporaries()

    def remove_temporaries(self) -> list[tuple[Path, int]]:
        """The temporary files of writes killed midway (a checkpoint, a snapshot, the metrics), removed."""
        return [r for d in (self.path, self.checkpoints, self.snapshots) for r in remove_stale_temporaries(d)]

    def read_config(self) -> dict | None:
        """config.json parsed, or None when it is missing, unreadable or not an object (never raises)."""
        return _read_json(self.config_file)

    def config(self) -> dict:
        if not self.config_file.exists():
            raise FileNotFoundError(f"{self.path} is not a run directory (no {CONFIG})")
        return read_json(self.config_file)

    def update_config(self, **items) -> None:
        cfg = self.config()
        cfg.update(items)
        write_json(self.config_file, cfg)

    def status(self, state: str, *, step: int, total_steps: int | None, **extra) -> None:
        write_json(self.status_file,
                   {"state": state, "step": step, "total_steps": total_steps, "updated": time.time(),
                    "pid": os.getpid(), "host": socket.gethostname(), **extra})

    def read_status(self) -> dict | None:
        """status.json as written, except that a "running" run whose writer is known to be gone (same machine, no
        such process) reads as "stopped", with the reason."""
        try:
            status = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(status, dict):
            return None
        pid = status.get("pid")
        if (status.get("state") == "running" and isinstance(pid, int) and status.get("host") == socket.gethostname()
                and pid != os.getpid() and not pid_alive(pid)):
            status = {**status, "state": "stopped",
                      "reason": f"the training process {pid} ended without a final status (killed?); resume with "
                                f"`contrastlab train --resume {self.path}`"}
        return status

    def append_metric(self, record: dict) -> None:
        append_jsonl(self.metrics_file, record)

    def metrics(self) -> list[dict]:
        return read_jsonl(self.metrics_file)

    def truncate_metrics(self, step: int) -> None:
        """Drop lines logged after `step` (a killed run wrote them after its last checkpoint), atomically."""
        kept = [r for r in self.metrics() if r.get("step", 0) <= step]
        atomic_write_bytes(self.metrics_file, "".join(json.dumps(r) + "\n" for r in kept).encode())

    def write_probe(self, *, ids, labels, thumbnails=None, classes=None, texts=None, modality=None,
                    pair=None, series=None) -> None:
        """The probe subset: ids, labels (-1: none), class names, and thumbnails (images), texts (text data) or
        series (sequence data, (P, C, T): kept cut to at most `probefile.SERIES_POINTS` steps for plotting).

        Two-modality runs (image-text) have one point per image and one per name: ``modality`` (P,) holds 0 for an
        image point and 1 for a text point, ``pair`` (P,) the row of the point's partner, ``thumbnails`` one per
        image point (in row order) and ``texts`` one per point (an image point carries its name)."""
        extra = {}
        if thumbnails is not None:
            extra["thumbnails"] = np.asarray(thumbnails, np.uint8)
        if texts is not None:
            extra["texts"] = np.asarray(list(texts), dtype=str)
        if series is not None:
            extra["series"] = plot_series(series)
        if modality is not None:
            extra["modality"] = np.asarray(modality, np.int8)
            extra["pair"] = np.asarray(pair, np.int64)
        self._npz(self.probe_file, ids=np.asarray(ids, np.int64), labels=np.asarray(labels, np.int64),
                  classes=np.asarray(list(classes or []), dtype=str), **extra)

    def write_snapshot(self, step: int, embeddings, *, elapsed: float) -> None:
        self._npz(self.snapshot_file(step), embeddings=np.asarray(embeddings, np.float32),
                  step=np.int64(step), time=np.float64(elapsed))

    def remove_snapshots_after(self, step: int) -> None:
        for f in self.snapshots.glob("step-*.npz"):
            if int(f.stem.split("-")[1]) > step:
                f.unlink(missing_ok=True)

    def write_eval(self, results: dict) -> None:
        write_json(self.eval_file, results)

    # -- reading, live (the dashboard) ----------------------------------------------------------------------
    def snapshot_files(self) -> list[tuple[int, str]]:
        """(step, file name) of every snapshot file present, by step (readable or not)."""
        try:
            names = os.listdir(self.snapshots)
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
        config = _read_json(self.config_file)
        status = self.read_status()          # a dead trainer's "running" reads as "stopped"
        evaluation = _read_json(self.eval_file)
        snaps = self.snapshot_files()
        try:
            metrics_bytes = (self.metrics_file).stat().st_size
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
        if self.config_file.exists() and config is None:
            notes.append("config.json is unreadable")
        return {"name": self.name, "path": str(self.path), "state": state, "status": status, "config": config,
                "eval": evaluation, "notes": notes, "metrics_bytes": metrics_bytes,
                "snapshots": [{"index": i, "step": step} for i, (step, _) in enumerate(snaps)],
                "probe": None if probe is None else {
                    "count": int(probe.ids.shape[0]), "classes": probe.classes,
                    "labelled": bool((probe.labels >= 0).any()), "thumbnail_shape": probe.thumbnail_shape,
                    "series_shape": probe.series_shape, "texts": probe.texts, **self._pair_info(probe)}}

    @staticmethod
    def _pair_info(probe: Probe) -> dict:
        """Two-modality runs: the modality and partner of every point and the counts; nothing otherwise."""
        if probe.modality is None:
            return {}
        return {"modality": probe.modality.tolist(), "pair": None if probe.pair is None else probe.pair.tolist(),
                "images": int((probe.modality == 0).sum()), "text_points": int((probe.modality == 1).sum())}

    # ---------------------------------------------------------------- metrics
    def read_metrics(self, offset: int = 0) -> dict:
        """Complete lines of metrics.jsonl from byte ``offset``: records, the next offset, and the count
        of lines that did not parse. A last line without its newline is left for the next call."""
        path = self.metrics_file
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
        path = self.probe_file
        try:
            st = path.stat()
        except OSError:
            return None, "snapshots/probe.npz is not there yet: no labels or thumbnails (points shown grey)"
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if self._probe is not None and self._probe[0] == key:
                return self._probe[1], self._probe[2]
            probe, note = load_probe(path)
            self._probe = (key, probe, note)
            self._arrays = {}
            self._pair_cos = {}
            return probe, note

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
        return self._probe_array("thumbnails", "thumbnail_shape", np.uint8)

    def series(self) -> np.ndarray | None:
        """Every probe point's series as plotted, (P, C, L) float32, or None (not a sequence run, or not readable)."""
        return self._probe_array("series", "series_shape", np.float32)

    def _probe_array(self, name: str, shape: str, dtype) -> np.ndarray | None:
        """The probe file's array ``name`` (read once per probe file, kept), if its rows have the probe's
        ``shape`` attribute and it holds ``dtype`` (floats are converted to it); else None."""
        probe, _ = self.probe()
        if probe is None or getattr(probe, shape) is None:
            return None
        with self._lock:
            kept = self._arrays.get(name)
            if kept is None or kept[0] is not probe:
                try:
                    arr = probe.array(name)
                except Exception:  # noqa: BLE001 - replaced under us: not there now
                    return None
                if arr is None or arr.shape[1:] != getattr(probe, shape) or (
                        arr.dtype != dtype and not (arr.dtype.kind == "f" and np.dtype(dtype).kind == "f")):
                    return None
                self._arrays[name] = kept = (probe, np.ascontiguousarray(arr, dtype))
            return kept[1]

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
            st = (self.snapshots / entry[1]).stat()
        except OSError:
            return None
        return (entry[1], st.st_mtime_ns, st.st_size)

    def _load_snapshot(self, entry) -> tuple[int, float, np.ndarray] | None:
        step, name = entry
        path = self.snapshots / name
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

    @staticmethod
    def _npz(path: Path, **arrays) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())
