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

__all__ = ["procrustes_displacement", "chain_displacements"]


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
