"""Textbook float64 formulas (full logits matrices) that the distributed and row-subset losses must match."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(a, b, temperature, decoupled=False):
    """Cross-entropy over the 2B x 2B cosine logits, self left out; decoupled: positive out of the denominator."""
    n = a.shape[0]
    z = F.normalize(torch.cat([a, b]), dim=1)
    logits = z @ z.T / temperature                                  # (2B, 2B)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    pos = logits[torch.arange(2 * n), target]
    den = logits.clone().fill_diagonal_(float("-inf"))
    if decoupled:
        den[torch.arange(2 * n), target] = float("-inf")
    return (den.logsumexp(1) - pos).mean()


def supcon(views, labels, temperature):
    """L_out of Khosla et al.: mean over anchors with a positive of -mean_p log softmax(anchor)_p."""
    b, v, d = views.shape
    z = F.normalize(views.reshape(b * v, d), dim=1)
    lab = (torch.arange(b) if labels is None else labels).repeat_interleave(v)
    logits = (z @ z.T / temperature).fill_diagonal_(float("-inf"))
    log_prob = logits - logits.logsumexp(1, keepdim=True)
    pos = (lab[:, None] == lab[None, :]).fill_diagonal_(False)
    n_pos = pos.sum(1)
    per = -torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(1) / n_pos.clamp(min=1)
    return per[n_pos > 0].mean()


def info_nce(q, p, negatives, temperature):
    """Cross-entropy over [all B positives, the query's own M negatives], target = own positive."""
    q, p = F.normalize(q, dim=1), F.normalize(p, dim=1)
    logits = q @ p.T                                                # (B, B)
    if negatives is not None:
        logits = torch.cat([logits, torch.einsum("bd,bmd->bm", q, F.normalize(negatives, dim=-1))], 1)
    return F.cross_entropy(logits / temperature, torch.arange(q.shape[0]))


def clip(a, b, logit_scale):
    """(CE over rows + CE over columns) / 2 of logit_scale * cos(a_i, b_j)."""
    logits = logit_scale * F.normalize(a, dim=1) @ F.normalize(b, dim=1).T
    t = torch.arange(a.shape[0])
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2
