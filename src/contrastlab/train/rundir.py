"""The run directory: where training and the dashboard meet.

    RUN/config.json               the full configuration (enough to rebuild and resume the run)
    RUN/status.json               {"state", "step", "total_steps", "updated"}, rewritten atomically
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
import time
from pathlib import Path

import numpy as np

from ..io import append_jsonl, atomic_write_bytes, read_json, read_jsonl, write_json

__all__ = ["RunDir"]


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

    def exists(self) -> bool:
        return self.config_file.exists()

    def create(self, config: dict) -> None:
        if self.exists():
            raise FileExistsError(f"run directory {self.path} already holds a run; resume it with "
                                  f"`contrastlab train --resume {self.path}` or choose another --run")
        self.snapshots.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        write_json(self.config_file, config)

    def config(self) -> dict:
        if not self.config_file.exists():
            raise FileNotFoundError(f"{self.path} is not a run directory (no config.json)")
        return read_json(self.config_file)

    def update_config(self, **items) -> None:
        cfg = self.config()
        cfg.update(items)
        write_json(self.config_file, cfg)

    def status(self, state: str, *, step: int, total_steps: int | None, **extra) -> None:
        write_json(self.path / "status.json",
                   {"state": state, "step": step, "total_steps": total_steps, "updated": time.time(), **extra})

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
