"""Softmax contrastive losses for a subset of the rows against every column: the "local loss" form.

A process that holds only some anchors (its local batch) but every candidate (the gathered batch) computes
those anchors' terms of the full-batch loss, divided by the full batch's anchor count. Each function returns
that **share**: summing the shares of any partition of the batch gives the full-batch loss exactly, value and
gradient. :mod:`contrastlab.losses.distributed` gathers the columns across processes and calls these; in one
process, with the rows being the whole batch, they equal :func:`nt_xent`, :func:`supcon`, :func:`clip_loss` and
:func:`info_nce` without ``negatives`` (which could become special cases of these, though the symmetric path of
the first two computes half the tiles). With per-query ``negatives``, :func:`info_nce_rows` keeps the in-batch
negatives too, where ``info_nce(q, p, negatives (B, M, D))`` uses only the given ones.

Memory stays linear: the rows-by-columns logits go through :func:`contrastlab.losses.lse.tiled_lse`.

Example (two halves of a batch, each against the whole batch)::

    >>> import torch
    >>> from contrastlab.losses import nt_xent
    >>> from contrastlab.losses.rows import nt_xent_rows
    >>> a, b = torch.randn(6, 8, dtype=torch.float64), torch.randn(6, 8, dtype=torch.float64)
    >>> halves = sum(nt_xent_rows(a[i:i + 3], b[i:i + 3], a, b, offset=i) for i in (0, 3))
    >>> torch.allclose(halves, nt_xent(a, b))
    True
"""
from __future__ import annotations

import torch

from . import validation as check
from .infonce import _exclusion_ids, _supcon_terms, _targets
from .lse import log1p_exp, tiled_lse

__all__ = ["nt_xent_rows", "supcon_rows", "info_nce_rows", "clip_loss_rows"]


def _offset(offset, rows: int, total: int) -> int:
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= total - rows:
        raise ValueError(f"`offset` must be an int in [0, {total - rows}] (the first local row's index in the "
                         f"{total} keys, holding {rows} local rows), got {offset!r}")
    return offset


def _keys(fn: str, rows: int, keys: torch.Tensor) -> int:
    n = keys.shape[0]
    if n < 2:
        raise ValueError(f"`{fn}` needs at least 2 examples in the whole batch (in-batch negatives), got {n}")
    if rows > n:
        raise ValueError(f"`{fn}`: the keys hold the whole batch, so they need at least as many rows as the "
                         f"local batch ({rows}), got {n}")
    return n


def nt_xent_rows(z_a: torch.Tensor, z_b: torch.Tensor, keys_a: torch.Tensor, keys_b: torch.Tensor, *,
                 offset: int, temperature: float = 0.5, decoupled: bool = False) -> torch.Tensor:
    """These rows' share of NT-Xent (SimCLR, Chen et al. 2020) over the whole batch.

    Anchors: the 2b local views. Candidates: all 2N views; the anchor's own copy is left out at its global
    position (``offset + i`` for view a, ``N + offset + i`` for view b), and so is its positive, which counts
    as ``log1p_exp(lse_negatives - l_pos)`` (and not at all with ``decoupled``).

    Shape:
        z_a, z_b: (b, D) local views; keys_a, keys_b: (N, D) the whole batch, with ``keys_a[offset + i]``
        being ``z_a[i]``. Output: scalar, ``sum over the 2b anchors / (2N)``.
    """
    check.pair("z_a", z_a, "z_b", z_b)
    check.pair("keys_a", keys_a, "keys_b", keys_b)
    check.same_dim("z_a", z_a, "keys_a", keys_a)
    scale = 1.0 / check.positive_number("temperature", temperature)
    b, n = z_a.shape[0], _keys("nt_xent_rows", z_a.shape[0], keys_a)
    off = _offset(offset, b, n)
    dt = check.compute_dtype(z_a, z_b, keys_a, keys_b)
    q = check.normalize(torch.cat([z_a, z_b]), dt)                            # (2b, D)
    k = check.normalize(torch.cat([keys_a, keys_b]), dt)                      # (2N, D)
    local = torch.arange(off, off + b, device=q.device)                       # (b,) global example index
    ids = (local.repeat(2), torch.arange(n, device=q.device).repeat(2))       # leave out self and positive
    pos = ((q[:b] * q[b:]).sum(1) * scale).repeat(2)                          # (2b,)
    gap = tiled_lse(q, k, scale=scale, ids=ids) - pos                         # (2b,) negatives only
    return ((gap if decoupled else log1p_exp(gap)).sum() / (2 * n)).to(z_a.dtype)


def supcon_rows(views: torch.Tensor, labels: torch.Tensor | None, keys: torch.Tensor,
                key_labels: torch.Tensor | None, *, offset: int, temperature: float = 0.1) -> torch.Tensor:
    """These rows' share of SupCon (Khosla et al. 2020, L_out) over the whole batch.

    An anchor's positives are all other views in the whole batch with its label (without labels: the other
    views of its example); its denominator is every other view. The share's denominator is the number of
    anchors in the whole batch that have a positive (anchors without one count nowhere, as in :func:`supcon`).

    Shape:
        views: (b, V, D) local; labels: (b,) or None. keys: (N, V, D) the whole batch, key_labels: (N,) or
        None, with ``keys[offset + i]`` being ``views[i]`` and ``key_labels[offset + i] == labels[i]``.
        Output: scalar.
    """
    check.embeddings("views", views, 3, shape_hint="(b, V, D)")
    check.embeddings("keys", keys, 3, shape_hint="(N, V, D)")
    if keys.shape[1:] != views.shape[1:]:
        raise ValueError(f"`keys` must have the views' (V, D) = {tuple(views.shape[1:])}, got {tuple(keys.shape)}")
    if (labels is None) != (key_labels is None):
        raise ValueError("`labels` and `key_labels` must both be given or both be None")
    scale = 1.0 / check.positive_number("temperature", temperature)
    b, v, d = views.shape
    n = keys.shape[0]
    off = _offset(offset, b, n)
    if n * v < 2:
        raise ValueError("`supcon_rows` needs at least 2 views in the whole batch, got 1")
    dev = views.device
    if labels is None:
        if v < 2:
            raise ValueError(f"`supcon_rows` without labels needs at least 2 views per example, got V={v}")
        labels, key_labels = torch.arange(off, off + b, device=dev), torch.arange(n, device=dev)
    row_lab = check.labels(labels, b).to(dev).repeat_interleave(v)            # (b V,)
    col_lab = check.labels(key_labels, n, name="key_labels").to(dev).repeat_interleave(v)   # (N V,)
    dt = check.compute_dtype(views, keys)
    z = check.normalize(views, dt).reshape(b * v, d)                          # (bV, D), row = i * V + view
    kz = check.normalize(keys, dt).reshape(n * v, d)                          # (NV, D)
    _, cls = torch.unique(torch.cat([col_lab, row_lab]), return_inverse=True)
    col_cls, row_cls = cls[: n * v], cls[n * v:]
    k = int(cls.max()) + 1
    count = torch.bincount(col_cls, minlength=k)                              # (K,)
    n_pos = count[row_cls] - 1                                                # (bV,)
    anchors = int((count[col_cls] > 1).sum())                                 # whole-batch anchors with a positive
    rows, cols = torch.arange(off * v, (off + b) * v, device=dev), torch.arange(n * v, device=dev)
    multi = bool((n_pos > 1).any())
    if multi:                       # classes contiguous on both sides: the kernel subtracts targets by blocks
        row_cls, r_order = torch.sort(row_cls, stable=True)
        col_cls, c_order = torch.sort(col_cls, stable=True)
        z, n_pos, rows = z[r_order], n_pos[r_order], rows[r_order]
        kz, cols = kz[c_order], cols[c_order]
    class_sum = kz.new_zeros(k, d).index_add(0, col_cls, kz)                  # (K, D) over the whole batch
    pos_sum = ((class_sum[row_cls] - z) * z).sum(1) * scale                   # (bV,) sum of positive logits
    single = n_pos == 1                                                       # those leave their positive out
    if bool((count == 2).any()):
        ids = (_exclusion_ids(row_cls, single, k, rows), _exclusion_ids(col_cls, count[col_cls] == 2, k, cols))
    else:
        ids = (rows, cols)
    targets = _targets(row_cls, col_cls, n_pos, pos_sum) if multi else None
    lse = tiled_lse(z, kz, scale=scale, ids=ids, targets=targets)             # (bV,) all but self (and single positive)
    has = n_pos > 0
    per = _supcon_terms(lse, pos_sum, single)
    return (per[has].sum() / max(anchors, 1)).to(views.dtype)                 # 0, still on the graph, if none


def info_nce_rows(query: torch.Tensor, positive: torch.Tensor, keys: torch.Tensor,
                  negatives: torch.Tensor | None = None, *, temperature: float = 0.1,
                  offset: int | None = None) -> torch.Tensor:
    """These queries' share of InfoNCE (van den Oord et al. 2018) with in-batch negatives from the whole batch.

    Query i's candidates are every positive in the whole batch (its own included, once) plus, if given, its own
    hard negatives ``negatives[i]`` (these are not shared with other queries).

    Shape:
        query, positive: (b, D) local pairs; keys: (N, D) the whole batch's positives (containing the local
        ones, ``keys[offset + i]`` being ``positive[i]``); negatives: None or (b, M, D). Output: scalar,
        ``sum over the b queries / N``.

    Args:
        offset: where the local positives start in ``keys``. Given, the positive is left out of the
            log-sum-exp and counted as ``log1p_exp(lse_negatives - l_pos)``, exact in float32 at any
            temperature; None subtracts it after a log-sum-exp over every key, which at low temperature is
            only as exact as the rounding of two large numbers (clamped at 0, a cross-entropy's minimum).
    """
    check.pair("query", query, "positive", positive)
    check.embeddings("keys", keys, 2, shape_hint="(N, D)")
    check.same_dim("query", query, "keys", keys)
    scale = 1.0 / check.positive_number("temperature", temperature)
    n = _keys("info_nce_rows", query.shape[0], keys)
    dt = check.compute_dtype(query, positive, keys)
    q, p, k = (check.normalize(t, dt) for t in (query, positive, keys))
    b = q.shape[0]
    if offset is None:
        lse = tiled_lse(q, k, scale=scale)                                    # (b,) over the batch's positives
    else:
        off = _offset(offset, b, n)
        ids = (torch.arange(off, off + b, device=q.device), torch.arange(n, device=q.device))
        lse = tiled_lse(q, k, scale=scale, ids=ids)                           # (b,) the other positives
    if negatives is not None:
        check.embeddings("negatives", negatives, 3, shape_hint="(b, M, D)")
        if negatives.shape[0] != query.shape[0]:
            raise ValueError(f"`negatives` must have shape (b, M, D) with b = {query.shape[0]} like `query`, "
                             f"got {tuple(negatives.shape)}")
        check.same_dim("query", query, "negatives", negatives)
        neg = check.normalize(negatives, dt)                                  # (b, M, D)
        with torch.autocast(q.device.type, enabled=False):                    # logits in the compute dtype
            l_neg = torch.einsum("bd,bmd->bm", q, neg) * scale                 # (b, M)
        lse = torch.logaddexp(lse, l_neg.logsumexp(1))
    l_pos = (q * p).sum(1) * scale                                            # (b,)
    per = (lse - l_pos).clamp(min=0.0) if offset is None else log1p_exp(lse - l_pos)
    return (per.sum() / n).to(query.dtype)


def clip_loss_rows(a: torch.Tensor, b: torch.Tensor, keys_a: torch.Tensor, keys_b: torch.Tensor, *,
                   logit_scale, offset: int | None = None) -> torch.Tensor:
    """These pairs' share of CLIP's symmetric loss (Radford et al. 2021) over the whole batch.

    Row direction: each local ``a`` against every ``b`` in the batch; column direction: each local ``b``
    against every ``a``. ``logit_scale`` may be a learnable scalar tensor (its gradient is exact too).

    Shape:
        a, b: (b, D) local pairs; keys_a, keys_b: (N, D) the whole batch (containing the local pairs at
        ``offset``). Output: scalar, ``sum over the b pairs of (row + column cross-entropy) / 2 / N``.

    Args:
        offset: where the local pairs start in the keys; as in :func:`info_nce_rows`, given it makes the
            positive's term exact in float32 (left out of the log-sum-exp, added as a softplus).
    """
    check.pair("a", a, "b", b)
    check.pair("keys_a", keys_a, "keys_b", keys_b)
    check.same_dim("a", a, "keys_a", keys_a)
    n = _keys("clip_loss_rows", a.shape[0], keys_a)
    s = check.positive_number("logit_scale", logit_scale, allow_tensor=True)
    dt = check.compute_dtype(a, b, keys_a, keys_b)
    x, y, ka, kb = (check.normalize(t, dt) for t in (a, b, keys_a, keys_b))
    s = s.to(dt).reshape(()) if torch.is_tensor(s) else s
    xs, ys = x * s, y * s                                                     # scale folded into the local side
    ids = None
    if offset is not None:                                                    # leave the positive out
        off = _offset(offset, x.shape[0], n)
        ids = (torch.arange(off, off + x.shape[0], device=x.device), torch.arange(n, device=x.device))
    rows = tiled_lse(xs, kb, scale=1.0, ids=ids)                              # (b,) a_i against every b
    cols = tiled_lse(ys, ka, scale=1.0, ids=ids)                              # (b,) b_i against every a
    pos = (xs * y).sum(1)                                                     # (b,)
    if offset is None:
        per = (rows - pos).clamp(min=0.0) + (cols - pos).clamp(min=0.0)
    else:
        per = log1p_exp(rows - pos) + log1p_exp(cols - pos)
    return (per.sum() / 2 / n).to(a.dtype)
