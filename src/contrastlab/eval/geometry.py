"""Geometry of an embedding on the unit sphere: alignment of positive pairs and uniformity of the
whole (Wang & Isola 2020, "Understanding Contrastive Representation Learning through Alignment and
Uniformity on the Hypersphere")."""

from __future__ import annotations

import torch

from ..losses import alignment, uniformity
from ..losses import validation as lcheck

__all__ = ["geometry"]


def geometry(z_a: torch.Tensor, z_b: torch.Tensor) -> dict:
    """Alignment and uniformity of two views' embeddings (rows L2-normalised inside).

    ``alignment`` = mean ``|z_a - z_b|^2`` over the pairs (lower: views agree more);
    ``uniformity`` = the mean of ``log mean exp(-2 |z_i - z_j|^2)`` over each view, as in the
    paper's reference loss (lower: more spread out; about -4 at best in high dimension).
    See :func:`contrastlab.losses.alignment` and :func:`contrastlab.losses.uniformity`.

    Example::

        >>> import torch
        >>> e = torch.eye(4)
        >>> geometry(e, e)
        {'alignment': 0.0, 'uniformity': -4.0}

    Shape:
        z_a, z_b: (B, D) with B >= 2, row i of both from the same image. Output: two floats.
    """
    lcheck.pair("z_a", z_a, "z_b", z_b)
    if z_a.shape[0] < 2:
        raise ValueError(f"`geometry` needs at least 2 pairs to measure uniformity, got B={z_a.shape[0]}")
    with torch.no_grad():
        align = float(alignment(z_a, z_b))
        unif = (float(uniformity(z_a)) + float(uniformity(z_b))) / 2
    return {"alignment": align, "uniformity": unif}
