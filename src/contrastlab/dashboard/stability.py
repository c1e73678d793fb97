"""How much a sequence of 2-D maps moves: the mean displacement of each point between consecutive
frames after Procrustes alignment (translation, rotation or reflection, uniform scale; Gower 1975),
in units of the map's RMS radius, so t-SNE, UMAP and PCA maps of any scale compare.

A map chain that starts each snapshot from the previous map (as :mod:`.maps` does) should move
less than maps computed independently, whose layout is free to flip or reshuffle clusters.

Example::

    >>> import numpy as np
    >>> from contrastlab.dashboard.stability import procrustes_displacement
    >>> a = np.random.default_rng(0).normal(size=(50, 2))
    >>> turned = 3.0 * a @ np.array([[0.0, -1.0], [1.0, 0.0]]) + 5.0    # rotated, scaled, shifted
    >>> round(procrustes_displacement(a, turned), 6)
    0.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .projection import project

__all__ = ["procrustes_displacement", "chain_displacements", "tightening_snapshots"]


def _standardise(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, np.float64)
    y = y - y.mean(0)
    rms = np.sqrt((y * y).sum(1).mean())
    return y / rms if rms > 0 else y


def procrustes_displacement(a: np.ndarray, b: np.ndarray) -> float:
    """The mean distance between the points of map ``a`` and those of map ``b`` once both are centred
    and scaled to RMS radius 1 and ``b`` is turned (and uniformly scaled) onto ``a``.

    Shape: a, b (P, 2) maps of the same points in the same order; a float >= 0.
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"`a` and `b` must be maps of the same shape (P, 2), got {a.shape} and {b.shape}")
    sa, sb = _standardise(a), _standardise(b)                                 # (P, 2) each
    u, s, vt = np.linalg.svd(sb.T @ sa)                                       # (2, 2)
    scale = s.sum() / max((sb * sb).sum(), 1e-300)
    aligned = scale * sb @ (u @ vt)                                           # (P, 2)
    return float(np.linalg.norm(aligned - sa, axis=1).mean())


def chain_displacements(snapshots: Sequence[np.ndarray], *, method: str, warm: bool = True) -> list[float]:
    """The Procrustes displacement between consecutive maps of ``snapshots`` (the same points each time):
    ``warm`` starts each map from the previous one, else every map is computed on its own.

    Shape: snapshots, each (P, D); a list of len(snapshots) - 1 floats.
    """
    maps, previous = [], None
    for x in snapshots:
        y = project(x, method=method, previous=previous if warm else None)
        maps.append(y)
        previous = y
    return [procrustes_displacement(maps[k - 1], maps[k]) for k in range(1, len(maps))]


def tightening_snapshots(points: int, dim: int, snapshots: int, *, seed: int = 0, tighten: float = 0.25
                         ) -> list[np.ndarray]:
    """Synthetic snapshots of one probe set: the same `points` in every snapshot, four clusters whose spread falls
    by `tighten` per snapshot (from 2.0), as a run's embeddings tighten while it trains; unit rows.
    Shape: `snapshots` arrays of (points, dim) float32.

    >>> [s.shape for s in tightening_snapshots(10, 3, 2)]
    [(10, 3), (10, 3)]
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, points)
    centres = rng.normal(size=(4, dim)) * 3
    noise = rng.normal(size=(points, dim))
    out = []
    for k in range(snapshots):
        x = centres[labels] + (2.0 - tighten * k) * noise + 0.3 * rng.normal(size=(points, dim))
        out.append((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32))
    return out
