"""Exact global negatives across processes: each rank's anchors against every rank's candidates.

Each function normalises its local embeddings, gathers them from every rank with
:func:`contrastlab.distributed.all_gather_with_grad` (one collective for all the views), computes its local rows
against all columns with :mod:`contrastlab.losses.rows` (memory linear in the global batch) and returns

    ``world_size * (this rank's share of the full-batch loss)``,

so that DistributedDataParallel, which averages gradients over ranks, yields exactly the gradient of one process
on the concatenated batch, also when ranks hold different batch sizes or (SupCon) different numbers of anchors
with a positive. The full-batch loss value is ``contrastlab.distributed.all_reduce_mean(loss)``. In one
process each is the plain loss (:func:`nt_xent`, :func:`supcon`, :func:`info_nce`, :func:`clip_loss`).

Every rank must call the same loss the same number of times: the gather (and its backward) is a collective.

Example (one process: the plain losses)::

    >>> import torch
    >>> from contrastlab.losses import nt_xent
    >>> from contrastlab.losses.distributed import global_nt_xent
    >>> a, b = torch.randn(8, 16), torch.randn(8, 16)
    >>> torch.equal(global_nt_xent(a, b, temperature=0.5), nt_xent(a, b, temperature=0.5))
    True
"""
from __future__ import annotations

import torch

from .. import distributed as dist
from . import validation as check
from .clip import clip_loss
from .infonce import info_nce, nt_xent, supcon
from .ranking import _direction, multiple_negatives_ranking
from .rows import clip_loss_rows, info_nce_rows, nt_xent_rows, supcon_rows

__all__ = ["global_nt_xent", "global_supcon", "global_info_nce", "global_clip_loss",
           "global_multiple_negatives_ranking"]


def _gather_pair(a: torch.Tensor, b: torch.Tensor):
    """Normalise two (b, D) tensors and gather both in one collective: local pair, global pair, offset."""
    dt = check.compute_dtype(a, b)
    x, y = check.normalize(a, dt), check.normalize(b, dt)                     # (b, D) each
    sizes = dist.gather_sizes(x.shape[0])
    both = dist.all_gather_with_grad(torch.stack([x, y], 1), sizes=sizes)     # (N, 2, D)
    return x, y, both[:, 0], both[:, 1], sum(sizes[: dist.rank()])


def global_nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, *, temperature: float = 0.5,
                   decoupled: bool = False) -> torch.Tensor:
    """NT-Xent (Chen et al. 2020) with every rank's views as negatives; see the module docstring for scaling.

    Shape: z_a, z_b: (b, D) this rank's two views. Output: scalar (this rank's scaled loss).
    """
    if dist.world_size() == 1:
        return nt_xent(z_a, z_b, temperature=temperature, decoupled=decoupled)
    check.pair("z_a", z_a, "z_b", z_b)
    x, y, ka, kb, off = _gather_pair(z_a, z_b)
    share = nt_xent_rows(x, y, ka, kb, offset=off, temperature=temperature, decoupled=decoupled)
    return (share * dist.world_size()).to(z_a.dtype)


def global_supcon(views: torch.Tensor, labels: torch.Tensor | None = None, *,
                  temperature: float = 0.1) -> torch.Tensor:
    """SupCon (Khosla et al. 2020) over every rank's views; the labels are gathered with them, so a positive
    on another rank counts. Without labels the views of one example are its positives.

    Shape: views (b, V, D), labels (b,) or None. Output: scalar (this rank's scaled loss).
    """
    if dist.world_size() == 1:
        return supcon(views, labels, temperature=temperature)
    check.embeddings("views", views, 3, shape_hint="(B, V, D)")
    z = check.normalize(views, check.compute_dtype(views))                   # (b, V, D)
    sizes = dist.gather_sizes(z.shape[0])
    keys = dist.all_gather_with_grad(z, sizes=sizes)                          # (N, V, D)
    off = sum(sizes[: dist.rank()])
    key_labels = None
    if labels is not None:
        labels = check.labels(labels, z.shape[0]).to(z.device)
        key_labels = dist.gather_no_grad(labels, sizes=sizes)                 # (N,) in the keys' order
    share = supcon_rows(z, labels, keys, key_labels, offset=off, temperature=temperature)
    return (share * dist.world_size()).to(views.dtype)


def global_info_nce(query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor | None = None, *,
                    temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE (van den Oord et al. 2018): each query against every rank's positives, plus its own hard
    negatives (b, M, D) if given (those stay local: they are negatives of their own query only).

    In one process this is ``info_nce(query, positive)`` without ``negatives``; with them, the denominator holds
    the in-batch positives AND the query's own negatives (``info_nce`` with (B, M, D) negatives uses only the
    latter), so that single-process case is computed by :func:`contrastlab.losses.rows.info_nce_rows`.

    Shape: query, positive: (b, D); negatives: None or (b, M, D). Output: scalar (this rank's scaled loss).
    """
    check.pair("query", query, "positive", positive)
    if dist.world_size() == 1:
        if negatives is None:
            return info_nce(query, positive, temperature=temperature)
        return info_nce_rows(query, positive, positive, negatives, temperature=temperature, offset=0)
    dt = check.compute_dtype(query, positive)
    p = check.normalize(positive, dt)                                         # (b, D)
    sizes = dist.gather_sizes(p.shape[0])
    keys = dist.all_gather_with_grad(p, sizes=sizes)                          # (N, D)
    share = info_nce_rows(query, p, keys, negatives, temperature=temperature, offset=sum(sizes[: dist.rank()]))
    return (share * dist.world_size()).to(query.dtype)


def global_clip_loss(a: torch.Tensor, b: torch.Tensor, *, logit_scale) -> torch.Tensor:
    """CLIP's symmetric loss (Radford et al. 2021): local ``a`` rows against every rank's ``b`` and local ``b``
    rows against every rank's ``a``; ``logit_scale`` may be learnable (e.g. ``LearnableTemperature()()``).

    Shape: a, b: (b, D). Output: scalar (this rank's scaled loss).
    """
    if dist.world_size() == 1:
        return clip_loss(a, b, logit_scale=logit_scale)
    check.pair("a", a, "b", b)
    x, y, ka, kb, off = _gather_pair(a, b)
    return (clip_loss_rows(x, y, ka, kb, logit_scale=logit_scale, offset=off) * dist.world_size()).to(a.dtype)


def global_multiple_negatives_ranking(query: torch.Tensor, document: torch.Tensor,
                                      negatives: torch.Tensor | None = None, *, temperature: float = 0.05,
                                      symmetric: bool = False,
                                      document_ids: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`~contrastlab.losses.multiple_negatives_ranking` with every rank's documents (and shared hard
    negatives) as candidates: local queries against all documents + all negatives, and with ``symmetric`` local
    documents against all queries. ``document_ids`` mark duplicates within a rank's batch only (each rank's ids
    are offset so that ranks never share one). Returns ``world_size x`` this rank's share, like the others.

    Every rank must pass ``negatives`` (an empty (0, D) tensor when it has none) or every rank None.

    Shape: query, document (b, D); negatives (M_r, D) or None; document_ids (b,) or None. Output: scalar.
    """
    if dist.world_size() == 1:
        if negatives is not None and negatives.shape[0] == 0:
            negatives = None
        return multiple_negatives_ranking(query, document, negatives, temperature=temperature,
                                          symmetric=symmetric, document_ids=document_ids)
    check.pair("query", query, "document", document)
    scale = 1.0 / check.positive_number("temperature", temperature)
    if not isinstance(symmetric, bool):
        raise TypeError(f"`symmetric` must be a bool, got {type(symmetric).__name__}")
    parts = [query, document] if negatives is None else [query, document, negatives]
    dt = check.compute_dtype(*parts)
    x, y, kq, kd, off = _gather_pair(query, document)                           # local (b, D), global (N, D)
    n = kq.shape[0]
    extra = None
    if negatives is not None:
        if negatives.shape[0]:
            check.embeddings("negatives", negatives, 2, shape_hint="(M, D)")
        if negatives.dim() != 2 or negatives.shape[1] != query.shape[1]:
            raise ValueError(f"`negatives` must have shape (M, D) with D = {query.shape[1]} like `query`, got "
                             f"{tuple(negatives.shape)}")
        neg = check.normalize(negatives, dt)
        if not neg.requires_grad:                                               # the gather's backward is a
            neg = neg.detach().requires_grad_()                                 # collective: every rank joins
        extra = dist.all_gather_with_grad(neg)                                  # (M, D) every rank's
        extra = extra if extra.shape[0] else None
    row_ids = col_ids = None                                                    # None: the positive is column off + i
    if document_ids is not None:
        ids = check.labels(document_ids, x.shape[0], name="document_ids").to(x.device)
        local = ids - ids.min()                                                 # equal ids stay equal
        width = int(dist.all_reduce_sum(float(local.max()) + 1 if local.numel() else 0.0) + 1)
        row_ids = local + width * dist.rank()                                   # distinct across ranks
        col_ids = dist.gather_no_grad(row_ids)                                  # (N,)
    l_pos = (x * y).sum(1) * scale                                              # (b,)
    per = _direction(x.to(dt), kd.to(dt), extra, l_pos, scale, row_ids, col_ids, offset=off)
    if symmetric:
        per = 0.5 * (per + _direction(y, kq, None, l_pos, scale, row_ids, col_ids, offset=off))
    return (per.sum() / n * dist.world_size()).to(query.dtype)
