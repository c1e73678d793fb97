"""The run directory: where training and the dashboard meet.

    RUN/config.json               the full configuration (enough to rebuild and resume the run) and the run's id
    RUN/status.json               {"state", "step", "total_steps", "updated", "pid", "host"}, rewritten atomically
    RUN/metrics.jsonl             one JSON object per line: kind "train" (loss, lr, throughput) or "monitor"
    RUN/snapshots/probe.npz       ids, labels, thumbnails and class names of the fixed probe subset
    RUN/snapshots/step-XXXXXXXX.npz   L2-normalised probe embeddings at that step
    RUN/checkpoints/last.pt       the latest checkpoint (atomic: write-then-rename)
    RUN/eval.json                 the offline evaluation

>>> import tempfile
>>> run = RunDir(tempfile.mkdtemp())
>>> run.append_metric({"kind": "train", "step": 1, "loss": 2.0}); run.metrics()[0]["loss"]
2.0
"""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path

import numpy as np

from ..io import append_jsonl, atomic_write_bytes, read_json, read_jsonl, remove_stale_temporaries, write_json
from ..processes import pid_alive

__all__ = ["RunDir", "RunInUse"]


class RunInUse(RuntimeError):
    """Another live process is training in this run directory."""


class RunDir:
    def __init__(self, path):
        self.path = Path(path)
        self.snapshots = self.path / "snapshots"
        self.checkpoints = self.path / "checkpoints"

    # -- files ---------------------------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

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
        its fitted tokenizer too, before the new run builds its own). config.json stays until `create` replaces it
        atomically: a kill in between still leaves a run that restarts."""
        for name in ("metrics.jsonl", "status.json", "eval.json", *(("tokenizer.json",) if tokenizer else ())):
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.snapshots, ignore_errors=True)
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        self.remove_temporaries()

    def remove_temporaries(self) -> list[tuple[Path, int]]:
        """The temporary files of writes killed midway (a checkpoint, a snapshot, the metrics), removed."""
        return [r for d in (self.path, self.checkpoints, self.snapshots) for r in remove_stale_temporaries(d)]

    def config(self) -> dict:
        if not self.config_file.exists():
            raise FileNotFoundError(f"{self.path} is not a run directory (no config.json)")
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
                    pair=None) -> None:
        """The probe subset: ids, labels (-1: none), class names, and thumbnails (images) or texts (text data).

        Two-modality runs (image-text) have one point per image and one per name: ``modality`` (P,) holds 0 for an
        image point and 1 for a text point, ``pair`` (P,) the row of the point's partner, ``thumbnails`` one per
        image point (in row order) and ``texts`` one per point (an image point carries its name)."""
        extra = {}
        if thumbnails is not None:
            extra["thumbnails"] = np.asarray(thumbnails, np.uint8)
        if texts is not None:
            extra["texts"] = np.asarray(list(texts), dtype=str)
        if modality is not None:
            extra["modality"] = np.asarray(modality, np.int8)
            extra["pair"] = np.asarray(pair, np.int64)
        self._npz(self.snapshots / "probe.npz", ids=np.asarray(ids, np.int64), labels=np.asarray(labels, np.int64),
                  classes=np.asarray(list(classes or []), dtype=str), **extra)

    def write_snapshot(self, step: int, embeddings, *, elapsed: float) -> None:
        self._npz(self.snapshots / f"step-{step:08d}.npz", embeddings=np.asarray(embeddings, np.float32),
                  step=np.int64(step), time=np.float64(elapsed))

    def remove_snapshots_after(self, step: int) -> None:
        for f in self.snapshots.glob("step-*.npz"):
            if int(f.stem.split("-")[1]) > step:
                f.unlink(missing_ok=True)

    def write_eval(self, results: dict) -> None:
        write_json(self.path / "eval.json", results)

    @staticmethod
    def _npz(path: Path, **arrays) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())
