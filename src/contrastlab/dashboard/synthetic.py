"""A synthetic run directory that follows the trainer's contract, for tests, screenshots and the
dashboard benchmark: the probe's embeddings drift from random directions toward one direction
per class, snapshot by snapshot, while the loss falls and the kNN accuracy rises.

Example::

    >>> import tempfile, pathlib
    >>> from contrastlab.dashboard.synthetic import write_synthetic_run
    >>> run = write_synthetic_run(pathlib.Path(tempfile.mkdtemp()) / "run", points=30, snapshots=3)
    >>> sorted(p.name for p in (run / "snapshots").iterdir())
    ['probe.npz', 'step-00000000.npz', 'step-00000100.npz', 'step-00000200.npz']

:func:`write_synthetic_pair_run` writes a two-modality (image-text) run instead: each probe item is an
image point and a name point (``modality``, ``pair``), far apart at first and converging.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from ..rundir import RunDir

__all__ = ["write_synthetic_run", "write_synthetic_pair_run", "write_snapshot", "append_metrics", "atomic_write"]

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
    path = RunDir(run).snapshot_file(step)
    atomic_write(path, _npz_bytes(embeddings=emb.astype(np.float32), step=np.int64(step), time=np.float64(seconds)))
    return path


def append_metrics(run: Path, records: list[dict]) -> None:
    with open(RunDir(run).metrics_file, "a", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        f.flush()


def _write_config(run: Path, *, names: list[str], dim: int, seed: int, method: str, data: str) -> None:
    config = {"method": method, "data": data, "seed": seed, "classes": names, "budget": {"minutes": 1},
              "hyperparameters": {"temperature": 0.2, "batch_size": 256, "lr": 0.3}, "model": {"dim": dim},
              "contrastlab_version": "0.1.0", "started": "2026-11-23T01:02:03Z"}
    atomic_write(RunDir(run).config_file, json.dumps(config, indent=2).encode())


def write_synthetic_run(run: Path, *, points: int = 500, dim: int = 32, classes: int = 10, snapshots: int = 5,
                        every: int = 100, thumbnail: int = 16, state: str = "done", seed: int = 0) -> Path:
    """Write a complete run directory at ``run`` and return its path (``thumbnail=0``: a probe without thumbnails)."""
    rng = np.random.default_rng(seed)
    run = Path(run)
    RunDir(run).snapshots.mkdir(parents=True, exist_ok=True)
    names = (FASHION_CLASSES * (classes // 10 + 1))[:classes]
    _write_config(run, names=names, dim=dim, seed=seed, data="synthetic",
                  method="synthetic (no training: made by contrastlab.dashboard.synthetic)")
    labels = rng.integers(0, classes, points).astype(np.int64)
    pictures = {"thumbnails": _thumbnails(labels, thumbnail, rng)} if thumbnail else {}        # 0: none
    atomic_write(RunDir(run).probe_file, _npz_bytes(
        ids=np.arange(points, dtype=np.int64), labels=labels, classes=np.array(names), **pictures))
    centres = rng.normal(size=(classes, dim))
    start = rng.normal(size=(points, dim))
    for k in range(snapshots):
        a = k / max(snapshots - 1, 1)
        emb = (1 - 0.85 * a) * start + 2.5 * a * centres[labels] + 0.2 * rng.normal(size=(points, dim))
        write_snapshot(run, k * every, emb, seconds=10.0 * k)
    _write_progress(run, snapshots=snapshots, every=every, state=state)
    return run


def _write_progress(run: Path, *, snapshots: int, every: int, state: str) -> None:
    """metrics.jsonl (a falling loss, a rising kNN accuracy) and status.json."""
    total = every * max(snapshots - 1, 1)
    train = [{"kind": "train", "step": s, "epoch": s / 400, "time": s / 10, "loss": 6.0 * np.exp(-s / total) + 1.0,
              "lr": 0.3 * min(1.0, s / (total / 5 + 1)), "throughput": 800.0 + 20 * np.sin(s)}
             for s in range(0, total + 1, max(every // 10, 1))]
    last = max(snapshots - 1, 1)
    monitor = [{"kind": "monitor", "step": k * every, "time": k * 10.0, "knn_top1": 0.1 + 0.8 * k / last,
                "alignment": 1.2 - 0.6 * k / last, "uniformity": -1.0 - k / last} for k in range(snapshots)]
    append_metrics(run, sorted(train + monitor, key=lambda r: (r["step"], r["kind"])))
    atomic_write(RunDir(run).status_file, json.dumps({"state": state, "step": total, "total_steps": total,
                                                      "updated": time.time()}).encode())


PAIR_CLASSES = ["Animals", "Food", "Travel", "Objects", "Symbols", "Activities"]
_ADJECTIVES = ["red", "blue", "small", "big", "happy", "sleepy", "green", "old", "shiny", "striped", "round", "tall"]
_NOUNS = ["fox", "apple", "train", "lamp", "star", "ball", "owl", "pear", "boat", "key", "heart", "kite", "cat",
          "cake", "bus", "clock", "moon", "drum"]
_PAIR_COLOURS = np.array([[228, 87, 46], [46, 134, 193], [39, 174, 96], [241, 196, 15], [142, 68, 173],
                          [230, 126, 34], [26, 188, 156], [192, 57, 43]], np.float64)


def _picture_thumbnails(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Small RGB pictures: a disc in the class colour (a different shade per item) on white."""
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    disc = (xx ** 2 + yy ** 2 < 0.16)[None, :, :, None]
    base = _PAIR_COLOURS[labels % len(_PAIR_COLOURS)] * rng.uniform(0.6, 1.0, (labels.shape[0], 1))
    out = np.where(disc, base[:, None, None, :], 255.0)
    return np.clip(out + rng.normal(0, 6, out.shape), 0, 255).astype(np.uint8)


def write_synthetic_pair_run(run: Path, *, pairs: int = 60, dim: int = 16, classes: int = 4, snapshots: int = 5,
                             every: int = 100, thumbnail: int = 16, state: str = "done", seed: int = 0) -> Path:
    """Write a two-modality run directory at ``run``, laid out as ``contrastlab train clip`` writes one:
    rows 0..P-1 of the probe are images (one thumbnail each), rows P..2P-1 their names; ``modality``
    and ``pair`` say which is which. Images and names start in two separate random clouds and move to
    one shared point per item, so the mean cosine between partners rises from about 0 to about 1."""
    rng = np.random.default_rng(seed)
    run = Path(run)
    RunDir(run).snapshots.mkdir(parents=True, exist_ok=True)
    names = (PAIR_CLASSES * (classes // len(PAIR_CLASSES) + 1))[:classes]
    _write_config(run, names=names, dim=dim, seed=seed, data="synthetic image-text pairs",
                  method="synthetic clip (no training: made by contrastlab.dashboard.synthetic)")
    p = pairs
    labels = rng.integers(0, classes, p).astype(np.int64)
    texts = [f"{_ADJECTIVES[i % len(_ADJECTIVES)]} {_NOUNS[(i // len(_ADJECTIVES) + 5 * i) % len(_NOUNS)]}"
             for i in range(p)]
    atomic_write(RunDir(run).probe_file, _npz_bytes(
        ids=np.tile(np.arange(p, dtype=np.int64), 2), labels=np.tile(labels, 2), classes=np.array(names),
        thumbnails=_picture_thumbnails(labels, thumbnail, rng), texts=np.array(texts + texts),
        modality=np.repeat(np.array([0, 1], np.int8), p),
        pair=np.concatenate([np.arange(p, 2 * p), np.arange(p)]).astype(np.int64)))
    centres = rng.normal(size=(classes, dim))
    target = 1.5 * centres[labels] + rng.normal(size=(p, dim))                  # where both ends meet
    gap = rng.normal(size=dim)
    gap *= 3.0 / np.linalg.norm(gap)                                            # images one side, names the other
    start_images, start_names = rng.normal(size=(p, dim)), rng.normal(size=(p, dim))
    for k in range(snapshots):
        a = k / max(snapshots - 1, 1)
        images = (1 - a) * (start_images + gap) + a * target + 0.1 * rng.normal(size=(p, dim))
        texts_ = (1 - a) * (start_names - gap) + a * target + 0.1 * rng.normal(size=(p, dim))
        write_snapshot(run, k * every, np.concatenate([images, texts_]), seconds=10.0 * k)
    _write_progress(run, snapshots=snapshots, every=every, state=state)
    return run
