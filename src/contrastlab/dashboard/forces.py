"""What the playground's losses do to each point: the objective of a batch, each point's pull and
push, and the anchor's softmax.

The objective calls the library's own losses (:mod:`contrastlab.losses`). The pull and push come
from the same losses by autograd, without a formula per loss: every row gets ``M`` extra
coordinates, ``U_r + eps * e_r`` with ``U = 0``, so the dot product of rows ``r`` and ``q`` becomes
``<z_r, z_q> + eps (U_rq + U_qr)`` while norms change by ``eps^2`` only. The gradient of the loss
with respect to ``U_rq`` is then ``eps`` times the derivative of the loss with respect to the
similarity (or ``-2 eps`` times the one with respect to the squared distance) of that one pair,
and the force that ``q`` exerts on ``r`` is ``-h_rq (z_q - <z_q, z_r> z_r)`` on the sphere. Summed
over the positives of ``r`` it is the pull; over the negatives, the push. For InfoNCE the push of
each negative comes out weighted by its softmax probability, as the formula says, and pull + push
is the exact gradient of the loss.

Example::

    >>> import torch
    >>> from contrastlab.dashboard.forces import make_objective, pair_forces
    >>> z = torch.nn.functional.normalize(torch.randn(8, 2, dtype=torch.float64), dim=1)
    >>> settings = {"loss": "info_nce", "temperature": 0.5, "hard_negative_beta": 0.0, "no_negatives": False}
    >>> objective, groups = make_objective(settings, labels=torch.zeros(8, dtype=torch.long))
    >>> pull, push = pair_forces(objective, z, groups)
    >>> pull.shape, push.shape
    (torch.Size([8, 2]), torch.Size([8, 2]))
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..losses import alignment, debiased_info_nce, info_nce, logistic, margin_contrastive, nt_xent, supcon, triplet

__all__ = ["make_objective", "forces_and_gradient", "pair_forces", "anchor_distribution", "entropy"]

#: Size of the tag coordinates per dtype: norms move by eps^2 only (1e-6 in float32, 1e-10 in float64),
#: while eps * d loss / d s stays far above the rounding of the other terms.
EPS = {torch.float32: 1e-3, torch.float64: 1e-5}
#: Past this many rows, forces are computed for a subset of rows (the cost is O(M^2 (D + rows))).
MAX_FORCE_ROWS = 256


Objective = Callable[[torch.Tensor], torch.Tensor]


def make_objective(settings: dict, *, labels: torch.Tensor) -> tuple[Objective, torch.Tensor]:
    """The loss of one batch as a function of its rows, and each row's positive group.

    Rows are ``[anchors (B); positives (B)]``: row ``i`` and row ``B + i`` are a positive pair.
    ``labels`` (2B,) are the rows' cluster labels, used by the supervised losses (SupCon, triplet),
    whose positives are then the rows of the same cluster. Returns ``objective(z (2B, D)) -> scalar``
    and ``groups`` (2B,): two rows are positives when their groups are equal.
    """
    m = labels.shape[0]
    b = m // 2
    pair_ids = torch.arange(b).repeat(2)                                      # (2B,)
    t = settings["temperature"]
    if settings["no_negatives"]:
        return (lambda z: alignment(z[:b], z[b:])), pair_ids
    loss = settings["loss"]
    if loss == "info_nce":
        beta = settings["hard_negative_beta"]
        return (lambda z: info_nce(z[:b], z[b:], temperature=t, hard_negative_beta=beta)), pair_ids
    if loss == "debiased_info_nce":
        tau_plus = settings["tau_plus"]
        return (lambda z: debiased_info_nce(z[:b], z[b:], temperature=t, tau_plus=tau_plus)), pair_ids
    if loss == "nt_xent":
        return (lambda z: nt_xent(z[:b], z[b:], temperature=t)), pair_ids
    if loss == "supcon":
        return (lambda z: supcon(z.unsqueeze(1), labels, temperature=t)), labels
    if loss == "triplet":
        margin, mining = settings["margin"], settings["mining"]
        return (lambda z: triplet(z, labels, margin=margin, mining=mining, distance="cosine")), labels
    if loss == "margin_contrastive":
        margin = settings["margin"]
        flags = torch.arange(2 * b) < b                                       # B positive, B negative pairs

        def contrastive(z):
            a, p = z[:b], z[b:]
            return margin_contrastive(torch.cat([a, a]), torch.cat([p, p.roll(1, 0)]), flags,
                                      margin=max(margin, 1e-6), distance="euclidean")
        return contrastive, pair_ids
    if loss == "logistic":
        return (lambda z: logistic(z[:b], z[b:], temperature=t, bias=-1.0 / t)), pair_ids
    raise ValueError(f"`loss` must be one of the playground's losses, got {loss!r}")


def forces_and_gradient(objective: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, groups: torch.Tensor, *,
                        rows: torch.Tensor | None = None, scale: float = 1.0, dtype: torch.dtype = torch.float32):
    """One autograd pass giving the loss, its gradient and each row's pull and push.

    Returns ``(loss, grad, pull, push)``: ``scale * objective(z)`` (a float), its gradient (M, d)
    with respect to ``z`` (exact up to the eps^2 change of the norms), and the pull (from the
    positives) and push (from the negatives) of each row in ``rows``: tangent vectors whose sum is
    minus the tangential part of that row's gradient.

    Shape:
        z: (M, d) unit rows. groups: (M,). rows: (k,) the rows to analyse (default: all, or the
        first :data:`MAX_FORCE_ROWS`). Outputs: grad, pull, push (M, d) in ``dtype`` (float32:
        relative error ~1e-6; float64: ~1e-10); pull and push are zero outside ``rows``.
    """
    mm, d = z.shape
    if rows is None:
        rows = torch.arange(min(mm, MAX_FORCE_ROWS))
    if dtype not in EPS:
        raise ValueError(f"`dtype` must be torch.float32 or torch.float64, got {dtype}")
    eps = EPS[dtype]
    k = rows.shape[0]
    zd = z.detach().to(dtype).requires_grad_(True)                            # (M, d)
    tags = torch.zeros(mm, k, dtype=dtype)
    tags[rows, torch.arange(k)] = eps
    u = torch.zeros(mm, k, dtype=dtype, requires_grad=True)                  # (M, k)
    with torch.enable_grad():
        loss = objective(torch.cat([zd, u + tags], 1)) * scale
        gz, gu = torch.autograd.grad(loss, (zd, u), allow_unused=True)
    zeros = torch.zeros(mm, d, dtype=dtype)
    if gz is None:                                                           # the loss ignores the batch
        return float(loss.detach()), zeros, zeros.clone(), zeros.clone()
    z0 = zd.detach()
    h = gu.t() / eps                                                         # (k, M): d loss / d s_rq
    h[torch.arange(k), rows] = 0.0                                           # no self-interaction
    zr = z0[rows]                                                            # (k, d)
    s = zr @ z0.t()                                                          # (k, M)
    pos = groups[rows].unsqueeze(1) == groups.unsqueeze(0)                   # (k, M)

    def force(mask):
        w = h * mask                                                         # (k, M)
        return -(w @ z0) + (w * s).sum(1, keepdim=True) * zr                 # (k, d), tangent at z_r

    pull, push = zeros.clone(), zeros.clone()
    pull[rows] = force(pos)
    push[rows] = force(~pos)
    return float(loss.detach()), gz, pull, push


def pair_forces(objective: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, groups: torch.Tensor, *,
                rows: torch.Tensor | None = None, scale: float = 1.0,
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's pull (from its positives) and push (from its negatives): tangent vectors whose sum
    is minus the tangential gradient of ``scale * objective`` with respect to that row. See
    :func:`forces_and_gradient` for shapes and precision.
    """
    _, _, pull, push = forces_and_gradient(objective, z, groups, rows=rows, scale=scale, dtype=dtype)
    return pull, push


def anchor_distribution(anchor: torch.Tensor, candidates: torch.Tensor, positive: int, *, temperature: float,
                        hard_negative_beta: float = 0.0) -> torch.Tensor:
    """The anchor's softmax over its positive and negatives, as InfoNCE weighs them.

    ``l_j = cos(anchor, candidate_j) / temperature``. With ``hard_negative_beta = 0`` it is the plain
    softmax of ``l``; with ``beta > 0`` each negative's mass is ``K exp((1 + beta) l_j) / sum_k
    exp(beta l_k)`` (Robinson et al. 2021), the denominator InfoNCE then uses.

    Shape: anchor (d,); candidates (C, d) with the positive at index ``positive``. Output: (C,)
    probabilities (float64) summing to 1.
    """
    a = torch.nn.functional.normalize(anchor.detach().to(torch.float64), dim=0)
    c = torch.nn.functional.normalize(candidates.detach().to(torch.float64), dim=1)
    logits = (c @ a) / temperature                                            # (C,)
    if hard_negative_beta == 0.0:
        return torch.softmax(logits, 0)
    neg = torch.ones_like(logits, dtype=torch.bool)
    neg[positive] = False
    k = int(neg.sum())
    log_mass = logits.clone()
    log_mass[neg] = (math.log(k) + (1.0 + hard_negative_beta) * logits[neg]
                     - torch.logsumexp(hard_negative_beta * logits[neg], 0))
    return torch.softmax(log_mass, 0)


def entropy(p: torch.Tensor) -> float:
    """Shannon entropy (nats) of a probability vector."""
    p = p[p > 0]
    return float(-(p * p.log()).sum())
