"""What the guided experiments measure on the playground: numbers computed from the engine's live
state (positions, labels, batch), in float64.

Example::

    >>> from contrastlab.dashboard.playground import Playground
    >>> from contrastlab.dashboard.measures import measure
    >>> m = measure(Playground(points=64, batch_size=16, seed=0))
    >>> sorted(m)[:4]
    ['alignment', 'between', 'hard_share', 'loss']
    >>> 0.0 <= m["purity"] <= 1.0
    True
"""

from __future__ import annotations

import torch

__all__ = ["measure", "hard_share", "neighbour_purity", "class_cosines", "pair_gap", "margin_gap", "HARD_K"]

#: "The hardest negatives" of :func:`hard_share`: this many per anchor.
HARD_K = 3


def hard_share(anchors: torch.Tensor, candidates: torch.Tensor, *, temperature: float, k: int = HARD_K) -> float:
    """Mean over anchors of the share of the negatives' softmax mass that the ``k`` hardest negatives take.

    Row ``i`` of ``candidates`` is the positive of anchor ``i``; the other rows are its negatives (InfoNCE's
    in-batch negatives). That share is also their share of the anchor's push (d loss / d l_j = p_j).

    Shape: anchors (B, d), candidates (B, d) unit rows. Output: a float in (0, 1].
    """
    a, c = anchors.double(), candidates.double()
    logits = a @ c.t() / temperature                                         # (B, B)
    b = logits.shape[0]
    logits = logits.masked_fill(torch.eye(b, dtype=torch.bool), float("-inf"))   # negatives only
    p = torch.softmax(logits, 1)                                             # (B, B) over the negatives
    top = p.topk(min(k, b - 1), dim=1).values.sum(1)                        # (B,)
    return float(top.mean())


def neighbour_purity(z: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of points whose nearest other point (cosine) has the same label. Shape: z (n, d), labels (n,)."""
    s = z.double() @ z.double().t()                                          # (n, n)
    s.fill_diagonal_(float("-inf"))
    return float((labels[s.argmax(1)] == labels).double().mean())


def class_cosines(z: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean cosine of the pairs of distinct points in the same class, and of those in different classes."""
    s = z.double() @ z.double().t()                                          # (n, n)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    off = ~torch.eye(len(labels), dtype=torch.bool)
    return float(s[same & off].mean()), float(s[~same].mean())


def pair_gap(z: torch.Tensor, labels: torch.Tensor, *, first: int = 0, second: int = 1) -> float:
    """Mean cosine of distinct points within clusters ``first`` and ``second`` (their pairs pooled) minus the
    mean cosine between the two clusters: about 0 when the two are merged, large when they are apart."""
    za, zb = z[labels == first].double(), z[labels == second].double()
    within = [za @ za.t(), zb @ zb.t()]
    total = sum(float(w.sum() - w.diagonal().sum()) for w in within)
    count = sum(w.shape[0] * (w.shape[0] - 1) for w in within)
    return total / max(count, 1) - float((za @ zb.t()).mean())


def margin_gap(z: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over points of (cosine distance to the nearest point of another class) minus (cosine distance to
    the farthest point of its own class): the quantity a batch-hard triplet loss asks to exceed its margin."""
    d = 1.0 - z.double() @ z.double().t()                                    # (n, n) cosine distance
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    nearest_negative = d.masked_fill(same, float("inf")).min(1).values
    farthest_positive = d.masked_fill(~same, float("-inf")).max(1).values
    return float((nearest_negative - farthest_positive).mean())


def measure(pg) -> dict:
    """Every number the experiments' checks may read, from the playground ``pg`` as it is now.

    loss, alignment, uniformity: the engine's own (:meth:`Playground.metrics`). hard_share: the batch's
    mean share of the negative mass on the :data:`HARD_K` hardest negatives at the current temperature.
    purity: 1-nearest-neighbour label agreement on the evaluation points. within / between: mean cosine of
    same- / different-cluster pairs of evaluation points; separation = within - between. pair_gap: of
    clusters A and B (the hard pair), :func:`pair_gap`. margin_gap: :func:`margin_gap`. step: the step count.
    """
    s = pg.settings
    z, labels = pg.embeddings, pg.labels
    ids = pg.eval_points
    ze, le = z[ids], labels[ids]
    a, p = pg.batch
    within, between = class_cosines(ze, le)
    return {**pg.metrics(), "step": pg.step_count,
            "hard_share": hard_share(z[a], z[p], temperature=s["temperature"]),
            "purity": neighbour_purity(ze, le), "within": within, "between": between,
            "separation": within - between, "pair_gap": pair_gap(ze, le), "margin_gap": margin_gap(ze, le)}
