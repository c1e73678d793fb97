"""2-D maps of embedding snapshots that move rather than jump from one snapshot to the next.

PCA (in torch, always available) gives each snapshot's two main axes; those axes are defined only up
to sign and, when two variances are close, rotation, so each new map is rotated (or reflected) onto
the previous one by orthogonal Procrustes (Schoenemann 1966): the points then move only as much as
the embedding did. t-SNE (``openTSNE``, van der Maaten & Hinton 2008; Policar et al. 2024) and UMAP
(``umap-learn``, McInnes et al. 2018) are installed by default; each new map starts from the
previous one, so a t-SNE map after the first needs only a short optimisation (no early
exaggeration), and a UMAP map fewer epochs.

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
import os
import warnings
from collections.abc import Callable

import numpy as np
import torch

__all__ = ["pca_2d", "procrustes", "project", "available_methods", "METHODS", "LABELS", "FIT_ROWS",
           "MIN_POINTS", "Cancelled", "nearest_neighbours",
           "first_use_note"]

#: Projection methods and the module each needs (None: built in).
METHODS = {"pca": None, "tsne": "openTSNE", "umap": "umap"}
#: How the page names them.
LABELS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
#: t-SNE and UMAP need at least this many points (fewer: a clear error; PCA takes any number).
MIN_POINTS = 8
#: t-SNE of the first snapshot: iterations with early exaggeration (12), then without.
TSNE_FIRST_ITERATIONS = (250, 250)
#: t-SNE of a snapshot started from the previous map: iterations without exaggeration.
TSNE_NEXT_ITERATIONS = 150
#: UMAP epochs for the first snapshot, and for one started from the previous map.
UMAP_FIRST_EPOCHS, UMAP_NEXT_EPOCHS = 200, 100
#: UMAP's learning rate for a map started from the previous one: umap-learn rescales an initial layout
#: per axis to [0, 10] and its default rate (1.0) then reshuffles it; at 0.1 consecutive 1k-point frames
#: moved ~0.12 map radii against ~0.2 (benchmarks/dashboard.py --stability-only).
UMAP_NEXT_LEARNING_RATE = 0.1
#: Threads of the t-SNE gradient: half the machine at most (the trainer may be running beside us).
JOBS = max(1, min(4, (os.cpu_count() or 2) // 2))
#: Exact nearest neighbours below this many points (cheap and deterministic), approximate above.
EXACT_NEIGHBOURS = 5000

# We hand UMAP exact neighbours without a search index (we never transform new points with it).
warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]", category=UserWarning)
warnings.filterwarnings("ignore", message="Tensorflow not installed; ParametricUMAP", category=ImportWarning)

#: Called as progress(fraction in [0, 1]) during a long projection; returning True stops it.
Progress = Callable[[float], bool]


class Cancelled(Exception):
    """A projection stopped by its progress callback (its result is no longer wanted)."""


_compiled: set[str] = set()              # methods whose just-in-time code is compiled in this process


def first_use_note(method: str) -> str | None:
    """What makes the first map of ``method`` in this process slower, if anything (shown while it computes)."""
    if method == "umap" and method not in _compiled:
        return "the first UMAP map of a session also compiles its numba code: about half a minute"
    return None


def available_methods() -> dict[str, bool]:
    """Which projections can run here: PCA always; t-SNE / UMAP when their packages are installed."""
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


def _tsne(x: np.ndarray, previous: np.ndarray | None, progress: Progress | None) -> np.ndarray:
    from openTSNE import TSNEEmbedding, affinity, initialization

    n = x.shape[0]
    aff = affinity.PerplexityBasedNN(x, perplexity=min(30.0, (n - 1) / 3), n_jobs=JOBS, random_state=0,
                                     method="exact" if n <= EXACT_NEIGHBOURS else "annoy")
    if previous is None:
        init = initialization.pca(x, random_state=0)                          # (P, 2), std 1e-4
        phases = [(TSNE_FIRST_ITERATIONS[0], {"exaggeration": 12, "momentum": 0.5}),
                  (TSNE_FIRST_ITERATIONS[1], {"momentum": 0.8})]
    else:
        init = np.array(previous, np.float64) - previous.mean(0)              # continue from the last map
        phases = [(TSNE_NEXT_ITERATIONS, {"momentum": 0.8})]
    embedding = TSNEEmbedding(init, aff, negative_gradient_method="bh", n_jobs=JOBS, random_state=0)
    total, done, stopped = sum(n_iter for n_iter, _ in phases), 0, False

    def report(fraction: float) -> bool:
        nonlocal stopped
        stopped = stopped or (progress is not None and bool(progress(fraction)))
        return stopped

    for n_iter, params in phases:
        def callback(iteration, error, emb, start=done):                      # noqa: ARG001 - openTSNE's signature
            return report((start + iteration) / total)
        embedding = embedding.optimize(n_iter, callbacks=callback, callbacks_every_iters=10, **params)
        done += n_iter
        if stopped or report(done / total):                                    # a True from the callback stops it
            raise Cancelled
    return np.asarray(embedding, np.float32)


def nearest_neighbours(x: np.ndarray, k: int, *, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours by Euclidean distance, each row's own index first.

    Shape: x (P, D); outputs indices (P, k) int64 and distances (P, k) float32, nearest first.
    """
    t = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    sq = (t * t).sum(1)                                                        # (P,)
    idx, dist = [], []
    for start in range(0, t.shape[0], chunk):
        rows = t[start:start + chunk]
        d2 = (sq[start:start + chunk, None] - 2 * rows @ t.t() + sq[None]).clamp_(min=0)   # (c, P)
        own = torch.arange(start, start + rows.shape[0])
        d2[torch.arange(rows.shape[0]), own] = -1.0                           # itself first, even among duplicates
        d, i = torch.topk(d2, k, dim=1, largest=False)
        idx.append(i)
        dist.append(d.clamp_(min=0).sqrt_())
    return torch.cat(idx).numpy().astype(np.int64), torch.cat(dist).numpy().astype(np.float32)


def _umap(x: np.ndarray, previous: np.ndarray | None, progress: Progress | None) -> np.ndarray:
    import umap

    n = x.shape[0]
    k = min(15, n - 1)
    # our exact neighbours: umap's own small-data path computes every distance in Python (seconds)
    knn = nearest_neighbours(x, k)
    init = "spectral" if previous is None else np.array(previous, np.float64)
    model = umap.UMAP(n_components=2, n_neighbors=k, init=init, random_state=0, n_jobs=1,
                      n_epochs=UMAP_FIRST_EPOCHS if previous is None else UMAP_NEXT_EPOCHS,
                      learning_rate=1.0 if previous is None else UMAP_NEXT_LEARNING_RATE,
                      precomputed_knn=(*knn, None), force_approximation_algorithm=True)
    y = np.asarray(model.fit_transform(x), np.float32)
    _compiled.add("umap")
    if progress is not None and progress(1.0):
        raise Cancelled
    return y


def project(x: np.ndarray, *, method: str = "pca", previous: np.ndarray | None = None,
            progress: Progress | None = None) -> np.ndarray:
    """A 2-D map of the embeddings ``x`` that continues ``previous`` (the last snapshot's map).

    ``progress``, for the slow methods, is called now and then with the fraction done; when it
    returns True the projection stops and raises :class:`Cancelled`.

    Shape: x (P, D); previous (P, 2) or None; output (P, 2) float32.
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {sorted(METHODS)}, got {method!r}")
    if not available_methods()[method]:
        raise ValueError(f"`method` {method!r} needs the package {METHODS[method]!r}, which is not installed")
    if previous is not None and previous.shape != (x.shape[0], 2):
        raise ValueError(f"`previous` must be a ({x.shape[0]}, 2) map, got shape {previous.shape}")
    if method == "pca":
        y = pca_2d(torch.from_numpy(np.ascontiguousarray(x)))
        if previous is not None:
            y = procrustes(y, torch.from_numpy(previous))
        return y.numpy()
    if x.shape[0] < MIN_POINTS:
        raise ValueError(f"{LABELS[method]} needs at least {MIN_POINTS} points, got {x.shape[0]}: use PCA")
    fit = _tsne if method == "tsne" else _umap
    return fit(np.ascontiguousarray(x, np.float32), previous, progress)
