"""A tiny image index for the dashboard's tests: synthetic 8x8 images of three classes embedded by a stand-in
embedder (a fixed random projection of the pixels), built with `build_index` and saved, next to the synthetic run
directory it is said to come from (meta["embedder"] is that run's path)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from contrastlab.dashboard.synthetic import write_synthetic_run
from contrastlab.search.indexing import build_index

CLASSES = ("ring", "bar", "dot")


class Projection:
    """Embeds an image as a fixed random projection of its pixels (unit vectors), like a run's image encoder."""

    def __init__(self, source: str, *, dim: int = 6, seed: int = 0):
        self.dim, self.image_shape, self.source, self.step = dim, (1, 8, 8), source, 7
        self.w = np.random.default_rng(seed).normal(size=(64, dim))                   # (64, D)

    def reference(self, x) -> np.ndarray:
        """The embedding in float64. Shape: (N, 1, 8, 8) -> (N, D)."""
        z = np.asarray(x, np.float64).reshape(len(x), 64) / 255.0 @ self.w
        return z / np.linalg.norm(z, axis=1, keepdims=True)

    def encode_images(self, x, *, batch_size=256):
        return self.reference(x).astype(np.float32)


def images(count: int, seed: int = 1) -> tuple[np.ndarray, list[str]]:
    """(count, 1, 8, 8) uint8 images (a class's pattern plus noise) and their class names."""
    rng = np.random.default_rng(seed)
    patterns = np.zeros((3, 8, 8))
    patterns[0, 1:7, 1:7] = 1
    patterns[0, 2:6, 2:6] = 0
    patterns[1, :, 3:5] = 1
    patterns[2, 3:5, 3:5] = 1
    labels = rng.integers(0, 3, count)
    x = patterns[labels] * 200 + rng.uniform(0, 55, (count, 8, 8))
    return x.astype(np.uint8)[:, None], [CLASSES[v] for v in labels]


def write_index_and_run(root: Path, *, count: int = 75) -> tuple[Path, Path, np.ndarray, list[str], Projection]:
    """A synthetic run at root/run and an index of `count` images said to be built from it at root/idx; returns
    (run, index folder, images, labels, embedder)."""
    run = write_synthetic_run(root / "run", points=40, dim=8, classes=3, snapshots=2)
    x, labels = images(count)
    embedder = Projection(str(run.resolve()))
    index = build_index(embedder, images=x, ids=[f"img-{i:03d}" for i in range(count)], texts=labels,
                        text_field="label")
    index.save(root / "idx")
    return run, root / "idx", x, labels, embedder
