"""TensorBoard: torch.utils.tensorboard's SummaryWriter on RUN/tensorboard, scalars and projector embeddings.

>>> TensorBoardTracker.requirements(None)
{'tensorboard': 'tensorboard'}
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import numpy as np

from ...io import atomic_write_bytes
from . import Tracker, register_tracker, scalars

__all__ = ["TensorBoardTracker"]


@register_tracker("tensorboard")
class TensorBoardTracker(Tracker):
    """torch.utils.tensorboard's SummaryWriter on RUN/tensorboard; embeddings in STEP/probe/ (projector layout)."""
    uses_snapshots = True
    TAG = "probe"

    @staticmethod
    def requirements(config) -> dict[str, str]:
        return {"tensorboard": "tensorboard"}

    @property
    def folder(self) -> Path:
        return self.run.path / "tensorboard"

    def start(self, *, kept: int) -> int:
        from torch.utils.tensorboard import SummaryWriter
        since = min(self.state.get("flushed", -1), kept)     # events after `since` may be lost or stale: purge them
        events = sorted(self.folder.glob("events.out.tfevents.*"))
        for d in self.folder.glob("[0-9]*"):
            if d.is_dir() and d.name.isdigit() and int(d.name) > since:
                shutil.rmtree(d)
        if events:               # TensorBoard reads files in name order, and names start with the second they were made
            wait = max(int(f.name.split(".")[3]) for f in events) + 1 - time.time()
            if 0 < wait < 2:
                time.sleep(wait)
        self.writer = SummaryWriter(log_dir=str(self.folder), purge_step=since + 1 if events else None,
                                    flush_secs=10)
        self._meta = None
        self._write_projector_config()
        return since

    def record(self, record: dict) -> None:
        for tag, value in scalars(record).items():
            self.writer.add_scalar(tag, value, global_step=record["step"])

    def _probe_metadata(self):
        """(metadata rows, header, label images (N, C, H, W) in [0, 1] or None) of RUN/snapshots/probe.npz."""
        import torch
        p = np.load(self.run.snapshots / "probe.npz")
        classes = [str(c) for c in p["classes"]]
        columns = {"id": [str(i) for i in p["ids"]],
                   "label": [classes[y] if 0 <= y < len(classes) else ("" if y < 0 else str(y)) for y in p["labels"]]}
        if "texts" in p:
            columns["text"] = [str(t) for t in p["texts"]]
        images = None
        if "thumbnails" in p:
            thumbs = p["thumbnails"]                                        # (M, H, W, C) uint8
            rows = np.flatnonzero(p["modality"] == 0) if "modality" in p else np.arange(len(thumbs))
            if len(rows) == len(thumbs):
                full = np.zeros((len(p["ids"]), *thumbs.shape[1:]), np.uint8)   # text points: a blank image
                full[rows] = thumbs
                images = torch.from_numpy(full).permute(0, 3, 1, 2).float() / 255
        if "modality" in p:
            columns["modality"] = ["image" if m == 0 else "text" for m in p["modality"]]
        columns = {k: [re.sub(r"\s+", " ", v) for v in vs] for k, vs in columns.items() if any(vs)}  # tab-separated
        if len(columns) == 1:                                   # one column: the projector expects no header
            return columns["id"], None, images
        return [list(r) for r in zip(*columns.values())], list(columns), images

    def snapshot(self, step: int, embeddings: np.ndarray) -> None:
        if self._meta is None:
            self._meta = self._probe_metadata()
        rows, header, images = self._meta
        if len(rows) != len(embeddings):
            rows = images = None
        self.writer.add_embedding(embeddings, metadata=rows, metadata_header=header if rows else None,
                                  label_img=images, global_step=step, tag=self.TAG)
        self._write_projector_config()

    def _write_projector_config(self) -> None:
        """projector_config.pbtxt for every embedding folder on disk (SummaryWriter's own lists only its session's)."""
        from google.protobuf import text_format
        from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig
        config = ProjectorConfig()
        for d in sorted(self.folder.glob(f"[0-9]*/{self.TAG}")):
            if not (d / "tensors.tsv").exists():
                continue
            e = config.embeddings.add(tensor_name=f"{self.TAG}:{d.parent.name}",
                                      tensor_path=f"{d.parent.name}/{self.TAG}/tensors.tsv")
            if (d / "metadata.tsv").exists():
                e.metadata_path = f"{d.parent.name}/{self.TAG}/metadata.tsv"
            if (d / "sprite.png").exists():
                h, w = np.load(self.run.snapshots / "probe.npz")["thumbnails"].shape[1:3]
                e.sprite.image_path = f"{d.parent.name}/{self.TAG}/sprite.png"
                e.sprite.single_image_dim.extend([int(w), int(h)])
        atomic_write_bytes(self.folder / "projector_config.pbtxt", text_format.MessageToString(config).encode())

    def checkpoint(self, step: int) -> None:
        self.writer.flush()
        self.state["flushed"] = step

    def close(self, status: str) -> None:
        self.writer.close()
