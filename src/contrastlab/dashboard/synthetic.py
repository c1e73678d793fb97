"""A synthetic run directory that follows the trainer's contract, for tests, screenshots and the
dashboard benchmark: the probe's embeddings drift from random directions toward one direction
per class, snapshot by snapshot, while the loss falls and the kNN accuracy rises.

Example::

    >>> import tempfile, pathlib
    >>> from contrastlab.dashboard.synthetic import write_synthetic_run
    >>> run = write_synthetic_run(pathlib.Path(tempfile.mkdtemp()) / "run", points=30, snapshots=3)
    >>> sorted(p.name for p in (run / "snapshots").iterdir())
    ['probe.npz', 'step-00000000.npz', 'step-00000100.npz', 'step-00000200.npz']
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

__all__ = ["write_synthetic_run", "write_snapshot", "append_metrics", "atomic_write"]

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace`` (as the trainer does)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _npz_bytes(**arrays) -> bytes:
    import io
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _thumbnails(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Small greyscale pictures, one pattern per class (stripes at a class-specific angle)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((labels.shape[0], size, size, 1), np.uint8)
    for c in np.unique(labels):
        angle = np.pi * max(c, 0) / 10
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * (xx * np.cos(angle) + yy * np.sin(angle)))
        idx = np.nonzero(labels == c)[0]
        noise = rng.random((idx.shape[0], size, size)) * 0.3
        out[idx, :, :, 0] = (255 * np.clip(wave[None] * 0.7 + noise, 0, 1)).astype(np.uint8)
    return out


def write_snapshot(run: Path, step: int, embeddings: np.ndarray, *, seconds: float = 0.0) -> Path:
    """snapshots/step-XXXXXXXX.npz with embeddings (P, D) float32 L2-normalised, step, time."""
    emb = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(min=1e-12)
    path = run / "snapshots" / f"step-{step:08d}.npz"
    atomic_write(path, _npz_bytes(embeddings=emb.astype(np.float32), step=np.int64(step), time=np.float64(seconds)))
    return path


def append_metrics(run: Path, records: list[dict]) -> None:
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        f.flush()


def write_synthetic_run(run: Path, *, points: int = 500, dim: int = 32, classes: int = 10, snapshots: int = 5,
                        every: int = 100, thumbnail: int = 16, state: str = "done", seed: int = 0) -> Path:
    """Write a complete run directory at ``run`` and return its path."""
    rng = np.random.default_rng(seed)
    run = Path(run)
    (run / "snapshots").mkdir(parents=True, exist_ok=True)
    names = (FASHION_CLASSES * (classes // 10 + 1))[:classes]
    total = every * max(snapshots - 1, 1)
    config = {"method": "synthetic (no training: made by contrastlab.dashboard.synthetic)", "data": "synthetic",
              "seed": seed, "classes": names, "budget": {"minutes": 1},
              "hyperparameters": {"temperature": 0.2, "batch_size": 256, "lr": 0.3}, "model": {"dim": dim},
              "contrastlab_version": "0.1.0", "started": "2026-11-23T01:02:03Z"}
    atomic_write(run / "config.json", json.dumps(config, indent=2).encode())
    labels = rng.integers(0, classes, points).astype(np.int64)
    atomic_write(run / "snapshots" / "probe.npz", _npz_bytes(
        ids=np.arange(points, dtype=np.int64), labels=labels, thumbnails=_thumbnails(labels, thumbnail, rng),
        classes=np.array(names)))
    centres = rng.normal(size=(classes, dim))
    start = rng.normal(size=(points, dim))
    for k in range(snapshots):
        a = k / max(snapshots - 1, 1)
        emb = (1 - 0.85 * a) * start + 2.5 * a * centres[labels] + 0.2 * rng.normal(size=(points, dim))
        write_snapshot(run, k * every, emb, seconds=10.0 * k)
    train = [{"kind": "train", "step": s, "epoch": s / 400, "time": s / 10, "loss": 6.0 * np.exp(-s / total) + 1.0,
              "lr": 0.3 * min(1.0, s / (total / 5 + 1)), "throughput": 800.0 + 20 * np.sin(s)}
             for s in range(0, total + 1, max(every // 10, 1))]
    last = max(snapshots - 1, 1)
    monitor = [{"kind": "monitor", "step": k * every, "time": k * 10.0, "knn_top1": 0.1 + 0.8 * k / last,
                "alignment": 1.2 - 0.6 * k / last, "uniformity": -1.0 - k / last} for k in range(snapshots)]
    append_metrics(run, sorted(train + monitor, key=lambda r: (r["step"], r["kind"])))
    atomic_write(run / "status.json", json.dumps({"state": state, "step": total, "total_steps": total,
                                                 "updated": time.time()}).encode())
    return run
