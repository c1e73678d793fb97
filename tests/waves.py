"""Tiny sequence data for the tests: two classes of two-channel series that a model can tell apart."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_waves(path: Path) -> tuple[Path, np.ndarray]:
    """40 + 20 two-channel series of two classes (a sine and a square wave with noise), 32 steps, as a
    ``series:`` .npz (train: the first 40, test: the last 20). Returns the path and the raw (60, 2, 32) array."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 4 * np.pi, 32)
    y = np.arange(60) % 2
    base = np.where(y[:, None] == 0, np.sin(t), np.sign(np.sin(t)))
    x = np.stack([base, np.cos(t) * (1 + y[:, None])], 1) + rng.normal(0, 0.3, (60, 2, 32))
    np.savez(path, x=x[:40], y=y[:40], x_test=x[40:], y_test=y[40:])
    return Path(path), x
