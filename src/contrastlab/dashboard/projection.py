"""2-D maps of embedding snapshots that move rather than jump from one snapshot to the next.

PCA (in torch, always available) gives each snapshot's two main axes; those axes are defined only up
to sign and, when two variances are close, rotation, so each new map is rotated (or reflected) onto
the previous one by orthogonal Procrustes (Schoenemann 1966): the points then move only as much as
the embedding did. t-SNE (``openTSNE``) and UMAP (``umap-learn``) are offered when importable, each
new map initialised from the previous one.

Example::

    >>> import torch
    >>> from contrastlab.dashboard.projection import pca_2d, procrustes
    >>> x = torch.randn(100, 8)
    >>> y = pca_2d(x)
    >>> turned = y @ torch.tensor([[0.0, -1.0], [1.0, 0.0]])        # the same map, rotated 90 degrees
    >>> bool(torch.allclose(procrustes(turned, y), y, atol=1e-5))
    True
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch

__all__ = ["pca_2d", "procrustes", "project", "available_methods", "METHODS", "FIT_ROWS"]

#: Projection methods and the module each needs (None: built in).
METHODS = {"pca": None, "tsne": "openTSNE", "umap": "umap"}


def available_methods() -> dict[str, bool]:
    """Which projections can run here: PCA always; t-SNE / UMAP when their packages import."""
    return {name: module is None or importlib.util.find_spec(module) is not None for name, module in METHODS.items()}


#: PCA axes are fitted on at most this many rows (an even stride through the rest); every row is
#: then projected. Exact below it; above it the axes differ from the full fit by sampling noise.
FIT_ROWS = 20_000


def pca_2d(x: torch.Tensor, *, fit_rows: int = FIT_ROWS) -> torch.Tensor:
    """The coordinates of the rows of ``x`` on their two principal axes.

    Shape: x (P, D) with P >= 1; output (P, 2) float32 (a zero column where D < 2 or the data are
    flat along it).
    """
    x = x.detach()
    stride = max(1, -(-x.shape[0] // fit_rows))                                # ceil(P / fit_rows)
    fit = x[::stride].to(torch.float64)                                        # (<= fit_rows, D)
    mean = fit.mean(0, keepdim=True)
    fc = fit - mean
    _, vecs = torch.linalg.eigh(fc.t() @ fc)                                   # (D, D), ascending eigenvalues
    axes = vecs[:, -2:].flip(1) if vecs.shape[1] >= 2 else torch.cat([vecs, torch.zeros_like(vecs)], 1)
    if stride == 1:
        return (fc @ axes).to(torch.float32)                                   # (P, 2)
    return ((x.to(torch.float32) - mean.to(torch.float32)) @ axes.to(torch.float32))   # (P, 2)


def procrustes(y: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``y`` turned by the orthogonal matrix R (rotation or reflection) that minimises
    ``|y R - reference|``: R = U V^T from the SVD of y^T reference.

    Shape: y, reference (P, 2) centred maps of the same points; output (P, 2).
    """
    stride = max(1, -(-y.shape[0] // FIT_ROWS))                                # a subset fixes R well
    m = y[::stride].to(torch.float64).t() @ reference[::stride].to(torch.float64)   # (2, 2)
    u, _, vt = torch.linalg.svd(m)
    return (y.to(torch.float64) @ (u @ vt)).to(y.dtype)


def _tsne(x: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    from openTSNE import TSNE                                                   # optional dependency
    init = previous if previous is not None else "pca"
    return np.asarray(TSNE(n_components=2, initialization=init, random_state=0).fit(x), np.float32)


def _umap(x: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    import umap                                                                 # optional dependency
    init = previous if previous is not None else "spectral"
    return np.asarray(umap.UMAP(n_components=2, init=init, random_state=0).fit_transform(x), np.float32)


def project(x: np.ndarray, *, method: str = "pca", previous: np.ndarray | None = None) -> np.ndarray:
    """A 2-D map of the embeddings ``x`` that continues ``previous`` (the last snapshot's map).

    Shape: x (P, D); previous (P, 2) or None; output (P, 2) float32.
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {sorted(METHODS)}, got {method!r}")
    if not available_methods()[method]:
        raise ValueError(f"`method` {method!r} needs the package {METHODS[method]!r}, which is not installed")
    if method == "pca":
        y = pca_2d(torch.from_numpy(np.ascontiguousarray(x)))
        if previous is not None:
            y = procrustes(y, torch.from_numpy(previous))
        return y.numpy()
    fit = _tsne if method == "tsne" else _umap
    return fit(np.ascontiguousarray(x, np.float32), previous)
