"""The playground's data: clusters of points on the circle or the sphere, and positive pairs made by
augmentation.

A *view* of point ``i`` is a noisy copy of its data position, snapped to the nearest other point:
the augmentation turns an example into a similar example, as cropping and colour jitter turn one
image into something close to another image of the same kind. Two points are thus positives when
the augmentation can carry one onto the other, which is the "augmentation graph" picture of
HaoChen et al. 2021 ("Provable Guarantees for Self-Supervised Deep Learning with Spectral
Contrastive Loss"): noise small enough keeps the graph inside the clusters, noise large enough (or
a hard pair of clusters close together) links clusters.

Example::

    >>> import torch
    >>> from contrastlab.dashboard.toy_data import make_clusters, sample_batch
    >>> x, labels = make_clusters(points=40, clusters=4, dim=2, generator=torch.Generator().manual_seed(0))
    >>> x.shape, labels.shape
    (torch.Size([40, 2]), torch.Size([40]))
    >>> anchors, positives = sample_batch(x, batch_size=8, noise=0.1, generator=torch.Generator().manual_seed(0))
    >>> len(set(anchors.tolist()) | set(positives.tolist()))   # 16 distinct points
    16
"""

from __future__ import annotations

import math
import string

import numpy as np
import torch

__all__ = ["make_clusters", "cluster_centres", "class_names", "sample_batch", "nearest_positives",
           "snap_to_points", "jitter"]

#: Angle between the two clusters of the hard pair (radians), against ~2 pi / K between the others.
HARD_PAIR_GAP = 0.45


def class_names(clusters: int) -> list[str]:
    """"A", "B", ... one per cluster."""
    return list(string.ascii_uppercase[:clusters])


def cluster_centres(clusters: int, dim: int, *, hard_pair: bool = False) -> torch.Tensor:
    """(K, dim) unit vectors spread evenly (circle: equal angles; sphere: a Fibonacci lattice); with
    ``hard_pair`` the second centre is moved to :data:`HARD_PAIR_GAP` radians from the first."""
    k = torch.arange(clusters, dtype=torch.float64)
    if dim == 2:
        angle = 2 * math.pi * k / clusters + math.pi / 4
        c = torch.stack([angle.cos(), angle.sin()], 1)                       # (K, 2)
    else:
        z = 1 - 2 * (k + 0.5) / clusters
        phi = math.pi * (3 - math.sqrt(5)) * k
        r = (1 - z * z).sqrt()
        c = torch.stack([r * phi.cos(), r * phi.sin(), z], 1)                # (K, 3)
    if hard_pair and clusters >= 2:
        tangent = c[1] - (c[1] @ c[0]) * c[0]
        tangent = tangent / tangent.norm()
        c[1] = math.cos(HARD_PAIR_GAP) * c[0] + math.sin(HARD_PAIR_GAP) * tangent
    return c


def make_clusters(*, points: int, clusters: int, dim: int, hard_pair: bool = False,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Data positions (N, dim) on the unit sphere and cluster labels (N,), balanced classes.

    Each cluster is a Gaussian blob around its centre, renormalised, with a spread of a quarter of
    the angle between neighbouring centres (capped at 0.3 rad).
    """
    centres = cluster_centres(clusters, dim, hard_pair=hard_pair)            # (K, dim)
    labels = torch.arange(points) % clusters                                  # (N,)
    spacing = 2 * math.pi / clusters if dim == 2 else math.sqrt(4 * math.pi / clusters)
    spread = min(0.3, spacing / 4)
    if hard_pair:
        spread = min(spread, HARD_PAIR_GAP / 2.5)
    noise = torch.randn(points, dim, generator=generator, dtype=torch.float64) * spread
    x = torch.nn.functional.normalize(centres[labels] + noise, dim=1)
    return x.float(), labels


def snap_to_points(x: torch.Tensor, queries: torch.Tensor, *, taken: torch.Tensor,
                   metric: str = "cosine") -> torch.Tensor:
    """For each query, the nearest point among those not ``taken`` and not already chosen for an earlier query
    (so every pick is a distinct point); ``metric`` "cosine" (points on the sphere: the largest dot product) or
    "euclidean" (points in the plane). ``taken`` is a (N,) bool mask, updated in place.

    Shape: x (N, dim); queries (B, dim); output (B,) int64.
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"`metric` must be 'cosine' or 'euclidean', got {metric!r}")
    q, xs = queries.double(), x.double()
    d = q @ (-xs).t()                                                        # (B, N) = -q.x: in distance order
    if metric == "euclidean":                                                # |q|^2 - 2 q.x + |x|^2, |q|^2 left out
        d = 2 * d + (xs * xs).sum(1)
    taken_ids = torch.nonzero(taken).squeeze(1)
    d.index_fill_(1, taken_ids, torch.inf)
    first = d.argmin(1).tolist()                                             # (B,) the nearest not taken (ties: lowest id)
    d = d.numpy()
    used = set(taken_ids.tolist())
    out = []
    for row, pick in enumerate(first):
        if pick in used:                                                     # an earlier query took it: the next nearest
            rest = d[row].copy()
            rest[list(used)] = np.inf
            pick = int(rest.argmin())
        used.add(pick)
        out.append(pick)
    out = torch.tensor(out, dtype=torch.long)
    taken[out] = True
    return out


def jitter(x: torch.Tensor, *, strength: float, generator: torch.Generator) -> torch.Tensor:
    """The free playground's augmentation: Gaussian noise of standard deviation ``strength``."""
    return x + strength * torch.randn(x.shape, generator=generator)


def nearest_positives(x: torch.Tensor, anchors: torch.Tensor, *, noise: float, generator: torch.Generator,
                      taken: torch.Tensor, augment=jitter, metric: str = "cosine") -> torch.Tensor:
    """For each anchor, the point nearest to an augmented copy of it (``augment(x[anchors], strength=noise,
    generator=)``, by default a noisy one) among the points not ``taken`` (see :func:`snap_to_points`).

    Shape: x (N, dim); anchors (B,) int64; output (B,) int64.
    """
    return snap_to_points(x, augment(x[anchors], strength=noise, generator=generator), taken=taken, metric=metric)


def sample_batch(x: torch.Tensor, *, batch_size: int, noise: float, generator: torch.Generator,
                 include: int | None = None, exclude: torch.Tensor | None = None, augment=jitter,
                 metric: str = "cosine") -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of ``batch_size`` anchors (always containing ``include`` if given) and their positives:
    2 x batch_size distinct points, none of them ``exclude``d ((N,) bool: held-out points).

    Shape: x (N, dim); outputs anchors (B,), positives (B,) int64.
    """
    n = x.shape[0]
    allowed = None if exclude is None else torch.nonzero(~exclude).squeeze(1)
    m = n if allowed is None else allowed.shape[0]
    if 2 * batch_size > m:
        raise ValueError(f"`batch_size` must be at most points / 2 = {m // 2}, got {batch_size}")
    pick = torch.randperm(m, generator=generator)[:batch_size]
    anchors = pick if allowed is None else allowed[pick]
    if include is not None and not bool((anchors == include).any()):
        anchors[0] = include
    taken = torch.zeros(n, dtype=torch.bool) if exclude is None else exclude.clone()
    taken[anchors] = True
    return anchors, nearest_positives(x, anchors, noise=noise, generator=generator, taken=taken, augment=augment,
                                      metric=metric)
