"""InfoNCE and its family: NT-Xent (SimCLR), SupCon, decoupled, debiased and hard-negative InfoNCE.

Every loss here is ``mean_i [ log(denominator_i) - positive_logit_i ]`` over cosine similarities
divided by a temperature. The positive terms cost O(N D); the denominators go through
:func:`contrastlab.losses.lse.tiled_lse`, which never materialises the N x N logits matrix.

Where the positive is in the denominator, it is left out of the log-sum-exp and added back as
``log1p_exp(lse_negatives - l_pos) = log(1 + sum_k exp(l_k - l_pos))``: never negative, and exact in
float32 on a solved batch (value and gradient ~exp(-gap)), where ``lse_all - l_pos`` would subtract two
large, nearly equal numbers.
"""

from __future__ import annotations

import math

import torch

from .. import devices
from . import validation as check
from .lse import log1p_exp, tiled_lse

__all__ = ["info_nce", "debiased_info_nce", "nt_xent", "supcon", "nt_xent_path", "NT_XENT_PATHS"]

#: How :func:`nt_xent` computes its denominators: ``"auto"`` picks by size and device (:func:`nt_xent_path`).
NT_XENT_PATHS = ("auto", "dense", "tiled")


def _reduce(per_item: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_item.mean()
    if reduction == "sum":
        return per_item.sum()
    return per_item


def _pairs(fn: str, query, positive, negatives, temperature, reduction, beta):
    """Validate and normalise a (query, positive[, negatives]) batch; returns q, p, n, scale."""
    check.pair("query", query, "positive", positive)
    t = check.positive_number("temperature", temperature)
    check.choice("reduction", reduction, check.REDUCTIONS)
    check.positive_number("hard_negative_beta", beta, allow_zero=True)
    dt = check.compute_dtype(query, positive)
    if negatives is None:
        if query.shape[0] < 2:
            raise ValueError(f"`{fn}` with in-batch negatives needs a batch of at least 2 pairs, got B=1; "
                             f"pass `negatives` or a larger batch")
        n = None
    else:
        if torch.is_tensor(negatives) and negatives.dim() == 3:
            check.embeddings("negatives", negatives, 3, shape_hint="(M, D) or (B, M, D)")
            if negatives.shape[0] != query.shape[0]:
                raise ValueError(f"`negatives` of shape (B, M, D) must have B = {query.shape[0]} like `query`, "
                                 f"got shape {tuple(negatives.shape)}")
        else:
            check.embeddings("negatives", negatives, 2, shape_hint="(M, D) or (B, M, D)")
        check.same_dim("query", query, "negatives", negatives)
        dt = check.compute_dtype(query, positive, negatives)
        n = check.normalize(negatives, dt)
    return check.normalize(query, dt), check.normalize(positive, dt), n, 1.0 / t


def _log_negative_mass(q, p, negatives, scale: float, beta: float):
    """Per query: log of the (optionally hardness-reweighted) sum of exp(negative logits), and K.

    With ``beta > 0`` (Robinson et al. 2021) each negative is weighted by exp(beta * logit),
    normalised to mean one: log K + LSE((1 + beta) l) - LSE(beta l).
    """
    def lse(s):
        if negatives is None:
            return tiled_lse(q, p, scale=s, exclude_diag=True)            # (B,) off-diagonal
        if negatives.dim() == 2:
            return tiled_lse(q, negatives, scale=s)                        # (B,) shared negatives
        return (torch.einsum("bd,bmd->bm", q, negatives) * s).logsumexp(1)  # (B,) per-query
    k = q.shape[0] - 1 if negatives is None else negatives.shape[-2]
    if beta == 0:
        return lse(scale), k
    return math.log(k) + lse(scale * (1.0 + beta)) - lse(scale * beta), k


def info_nce(query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor | None = None, *,
             temperature: float = 0.1, reduction: str = "mean", hard_negative_beta: float = 0.0,
             decoupled: bool = False) -> torch.Tensor:
    """InfoNCE (van den Oord et al. 2018, "Representation Learning with Contrastive Predictive Coding").

    ``L_i = -log exp(s+/t) / (exp(s+/t) + sum_k exp(s-_k/t))`` with cosine similarities s.

    Example::

        >>> import torch
        >>> from contrastlab.losses import info_nce
        >>> q, p = torch.randn(8, 16), torch.randn(8, 16)
        >>> info_nce(q, p, temperature=0.1).shape
        torch.Size([])

    Shape:
        query, positive: (B, D). negatives: None (each query's negatives are the other rows'
        positives), (M, D) shared by all queries, or (B, M, D) per query. Output: scalar, or (B,)
        with ``reduction="none"``.

    Args:
        temperature: divides the cosine similarities; > 0.
        reduction: "mean", "sum" or "none".
        hard_negative_beta: > 0 up-weights hard negatives by exp(beta * s/t) (Robinson et al. 2021,
            "Contrastive Learning with Hard Negative Samples"); 0 is plain InfoNCE.
        decoupled: leave the positive out of the denominator (Yeh et al. 2022, "Decoupled
            Contrastive Learning").
    """
    q, p, n, scale = _pairs("info_nce", query, positive, negatives, temperature, reduction, hard_negative_beta)
    l_pos = (q * p).sum(1) * scale                                           # (B,)
    log_neg, _ = _log_negative_mass(q, p, n, scale, float(hard_negative_beta))
    per = log_neg - l_pos if decoupled else log1p_exp(log_neg - l_pos)      # log(1 + sum_k e^{l_k - l+})
    return _reduce(per, reduction).to(query.dtype)


def debiased_info_nce(query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor | None = None, *,
                      temperature: float = 0.1, tau_plus: float = 0.1, hard_negative_beta: float = 0.0,
                      reduction: str = "mean") -> torch.Tensor:
    """Debiased contrastive loss (Chuang et al. 2020, "Debiased Contrastive Learning").

    Corrects for false negatives, assuming a fraction ``tau_plus`` of "negatives" share the query's
    class: the negative mass ``N_g = max((sum_k e^{s-_k/t} - tau_plus K e^{s+/t}) / (1 - tau_plus), K e^{-1/t})``
    replaces the plain sum. With ``hard_negative_beta > 0`` the negatives are reweighted first, which
    is the HCL objective of Robinson et al. 2021. ``tau_plus=0`` and ``beta=0`` give InfoNCE with
    the floor ``K e^{-1/t}`` (inactive for unit vectors).

    Example::

        >>> import torch
        >>> from contrastlab.losses import debiased_info_nce
        >>> debiased_info_nce(torch.randn(8, 16), torch.randn(8, 16), tau_plus=0.1).shape
        torch.Size([])

    Shape: as :func:`info_nce`.
    """
    q, p, n, scale = _pairs("debiased_info_nce", query, positive, negatives, temperature, reduction,
                                hard_negative_beta)
    tp = check.positive_number("tau_plus", tau_plus, allow_zero=True)
    if tp >= 1:
        raise ValueError(f"`tau_plus` must be in [0, 1), got {tp!r}")
    l_pos = (q * p).sum(1) * scale                                           # (B,)
    log_neg, k = _log_negative_mass(q, p, n, scale, float(hard_negative_beta))
    floor = math.log(k) - scale                                              # log(K e^{-1/t})
    if tp == 0:
        log_ng = torch.clamp(log_neg, min=floor)
    else:
        b = math.log(tp * k) + l_pos                                         # log(tau+ K e^{s+/t})
        above = b < log_neg
        gap = torch.where(above, b - log_neg, torch.full_like(b, -1.0))      # -1: any finite stand-in where unused
        raw = log_neg + torch.log(-torch.expm1(gap)) - math.log(1.0 - tp)    # log(NegSum - tau+ K e^{s+/t}) ...
        log_ng = torch.where(above, torch.clamp(raw, min=floor), torch.full_like(raw, floor))
    per = log1p_exp(log_ng - l_pos)                                           # log(1 + N_g e^{-l+})
    return _reduce(per, reduction).to(query.dtype)


def nt_xent_path(rows: int, device, path: str = "auto") -> str:
    """``"dense"`` (the plain rows x rows logits matrix, autograd's backward) or ``"tiled"`` (:func:`tiled_lse`)
    for an NT-Xent of ``rows`` = 2B views on ``device``: ``path="auto"`` takes the dense matrix up to
    :func:`contrastlab.devices.dense_loss_rows` rows (0 on the CPU: always tiled), where one big product beats
    many tile launches; both give the same value and gradient to float rounding.

    Example::

        >>> from contrastlab.devices import CPU
        >>> nt_xent_path(2048, CPU), nt_xent_path(2048, CPU, "dense")
        ('tiled', 'dense')
    """
    check.choice("path", path, NT_XENT_PATHS)
    if path != "auto":
        return path
    return "dense" if rows <= devices.dense_loss_rows(device) else "tiled"


def _dense_negative_lse(z: torch.Tensor, scale: float, b: int) -> torch.Tensor:
    """Per view of ``z`` (2B, D), view-major: the log-sum-exp of its 2B - 2 negative logits, from the full matrix.
    Shape: (2B, D) -> (2B,)."""
    logits = (z * scale) @ z.t()                                              # (2B, 2B), one matrix
    for k in (0, b, -b):                                                      # itself and its positive
        logits.diagonal(k).fill_(float("-inf"))
    return logits.logsumexp(1)


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, *, temperature: float = 0.5,
            decoupled: bool = False, path: str = "auto") -> torch.Tensor:
    """NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al. 2020,
    "A Simple Framework for Contrastive Learning of Visual Representations").

    Each of the 2B views is an anchor whose positive is the other view of its image and whose
    negatives are the other 2B - 2 views; the loss averages over the 2B anchors. ``decoupled=True``
    drops the positive from the denominator (Yeh et al. 2022). ``path`` (auto | dense | tiled): how the
    denominators are computed (:func:`nt_xent_path`); every path gives the same loss to float rounding.

    Example::

        >>> import torch
        >>> from contrastlab.losses import nt_xent
        >>> a, b = torch.randn(8, 16), torch.randn(8, 16)
        >>> nt_xent(a, b, temperature=0.5).shape
        torch.Size([])
        >>> torch.allclose(nt_xent(a, b, path="dense"), nt_xent(a, b, path="tiled"))
        True

    Shape:
        z_a, z_b: (B, D), row i of each a view of the same example. Output: scalar.
    """
    check.pair("z_a", z_a, "z_b", z_b)
    scale = 1.0 / check.positive_number("temperature", temperature)
    check.choice("path", path, NT_XENT_PATHS)
    b = z_a.shape[0]
    if b < 2:
        raise ValueError("`nt_xent` needs a batch of at least 2 pairs (in-batch negatives), got B=1")
    dt = check.compute_dtype(z_a, z_b)
    z = check.normalize(torch.cat([z_a, z_b]), dt)                            # (2B, D)
    pos = ((z[:b] * z[b:]).sum(1) * scale).repeat(2)                           # (2B,)
    if nt_xent_path(2 * b, z.device, path) == "dense":
        lse = _dense_negative_lse(z, scale, b)                                 # (2B,)
    else:
        lse = tiled_lse(z, scale=scale, exclude_diag=True, period=b)           # (2B,)
    gap = lse - pos                                                            # (2B,) negatives only
    return (gap if decoupled else log1p_exp(gap)).mean().to(z_a.dtype)


def supcon(views: torch.Tensor, labels: torch.Tensor | None = None, *, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss, the L_out form (Khosla et al. 2020, "Supervised Contrastive
    Learning").

    Every view is an anchor; its positives are all other views with the same label (or, without
    labels, the other views of the same example, which for V = 2 is exactly NT-Xent); its
    denominator is every other view. An anchor with no positive contributes nothing, so the loss is
    never NaN; with no positive anywhere it is 0 (and still connected to the graph).

    Example::

        >>> import torch
        >>> from contrastlab.losses import supcon
        >>> views, labels = torch.randn(8, 2, 16), torch.tensor([0, 1, 0, 1, 2, 2, 3, 3])
        >>> supcon(views, labels, temperature=0.1).shape
        torch.Size([])

    Shape:
        views: (B, V, D). labels: (B,) integers, or None. Output: scalar.
    """
    check.embeddings("views", views, 3, shape_hint="(B, V, D)")
    scale = 1.0 / check.positive_number("temperature", temperature)
    b, v, d = views.shape
    if labels is not None:
        ids = check.labels(labels, b).to(views.device)
    elif v < 2:
        raise ValueError(f"`supcon` without labels needs at least 2 views per example, got V={v}")
    else:
        ids = torch.arange(b, device=views.device)
    if b * v < 2:
        raise ValueError("`supcon` needs at least 2 views in the batch, got 1")
    dt = check.compute_dtype(views)
    z = check.normalize(views, dt).transpose(0, 1).reshape(v * b, d)           # (N, D), row = v * B + b
    _, cls = torch.unique(ids.repeat(v), return_inverse=True)                  # (N,) compact class ids
    k = int(cls.max()) + 1
    n_pos = torch.bincount(cls, minlength=k)[cls] - 1                          # (N,)
    has = n_pos > 0
    if not bool(has.any()):
        return (z.sum() * 0.0).to(views.dtype)
    single = n_pos == 1             # an anchor with one positive leaves it out of its sum (and only then)
    multi = bool((n_pos > 1).any())
    if multi:                       # classes contiguous: the kernel subtracts the targets block by block
        cls, order = torch.sort(cls, stable=True)
        z, n_pos, single, has = z[order], n_pos[order], single[order], has[order]
    class_sum = z.new_zeros(k, d).index_add(0, cls, z)                         # (K, D)
    pos_sum = ((class_sum[cls] - z) * z).sum(1) * scale                        # (N,) sum of positive logits
    targets = _targets(cls, cls, n_pos, pos_sum) if multi else None
    if labels is None and v == 2:                                              # all single: NT-Xent's exclusion
        lse = tiled_lse(z, scale=scale, exclude_diag=True, period=b)
    elif bool(single.any()):
        lse = tiled_lse(z, scale=scale, targets=targets,
                        ids=_exclusion_ids(cls, single, k, torch.arange(z.shape[0], device=z.device)))
    else:
        lse = tiled_lse(z, scale=scale, exclude_diag=True, targets=targets)    # (N,) all but self
    per = _supcon_terms(lse, pos_sum, single)
    return per[has].mean().to(views.dtype)


def _exclusion_ids(cls, single, k, position):
    """Ids for :func:`tiled_lse`: a view with a single positive shares its class id with that positive
    (both left out of each other's sums); every other view gets its own id (only itself left out)."""
    return torch.where(single, cls, k + position)


def _targets(row_cls, col_cls, n_pos, pos_sum):
    """:func:`tiled_lse` targets for SupCon: an anchor with several positives subtracts their mean logit
    (weight 1 / |P| on each), its gradient taken on the logits, where it cancels the softmax weights."""
    a = torch.where(n_pos > 1, 1.0 / n_pos.clamp(min=1).to(pos_sum.dtype), torch.zeros_like(pos_sum))
    return (row_cls, col_cls, a, pos_sum)


def _supcon_terms(lse, pos_sum, single):
    """Per anchor: with one positive (left out of ``lse``), ``softplus(lse - l_pos)``; with several, ``lse``
    already holds ``lse - mean positive logit`` (the kernel's ``targets``)."""
    return torch.where(single, log1p_exp(lse - pos_sum), lse)
