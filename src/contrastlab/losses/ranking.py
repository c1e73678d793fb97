"""In-batch-negatives ranking loss for query -> document training (the "multiple negatives ranking" form of InfoNCE).

Each query's candidates are every document of the batch plus any extra (hard) negatives, shared by all queries:
``L_i = -log exp(s_ii / t) / sum_j exp(s_ij / t)`` over j in documents + negatives (Henderson et al. 2017,
"Efficient Natural Language Response Suggestion for Smart Reply"; Karpukhin et al. 2020, DPR). Documents that are the
same as query i's positive (equal `document_ids`) are not its negatives: they are left out and the positive counted
once, so a batch that holds one document twice is not penalised for ranking it high.

Example::

    >>> import torch
    >>> from contrastlab.losses import multiple_negatives_ranking
    >>> q, d, n = torch.randn(8, 16), torch.randn(8, 16), torch.randn(4, 16)
    >>> multiple_negatives_ranking(q, d, n, temperature=0.05, symmetric=True).shape
    torch.Size([])

Shape: query, document (B, D); negatives (M, D) or None; document_ids (B,) int64 or None. Output: scalar, or (B,)
with ``reduction="none"`` (the mean of both directions when symmetric).
"""
from __future__ import annotations

import torch

from . import validation as check
from .lse import log1p_exp, tiled_lse

__all__ = ["multiple_negatives_ranking"]


def _direction(rows, cols, extra, l_pos, scale, row_ids, col_ids, offset=0):
    """Per row: the cross-entropy over `cols` (+ `extra`), the positive being column ``offset + i``.

    The negatives' log-sum-exp leaves out the positive (and, with ids, every same-id column); the positive is
    counted once as ``log1p_exp(lse_neg - l_pos) = log(1 + sum_k exp(l_k - l_pos))``, exact in float32.
    """
    keys = cols if extra is None else torch.cat([cols, extra])
    if row_ids is None and extra is None and offset == 0 and cols.shape[0] == rows.shape[0]:
        return log1p_exp(tiled_lse(rows, keys, scale=scale, exclude_diag=True) - l_pos)
    if row_ids is None:                                       # ids = positions: the positive is left out
        row_ids = offset + torch.arange(rows.shape[0], device=rows.device)
        col_ids = torch.arange(cols.shape[0], device=rows.device)
    if extra is not None:                                     # extra negatives never share an id with a document
        below = int(torch.minimum(row_ids.min(), col_ids.min())) if col_ids.numel() else 0
        col_ids = torch.cat([col_ids, below - 1 - torch.arange(extra.shape[0], device=col_ids.device)])
    rest = tiled_lse(rows, keys, scale=scale, ids=(row_ids, col_ids))
    return log1p_exp(rest - l_pos)


def multiple_negatives_ranking(query: torch.Tensor, document: torch.Tensor, negatives: torch.Tensor | None = None,
                               *, temperature: float = 0.05, symmetric: bool = False,
                               document_ids: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """In-batch negatives InfoNCE over cosine similarities; see the module docstring.

    Args:
        temperature: divides the cosine similarities; > 0 (0.05 is the usual value for text).
        symmetric: also rank the queries for each document (negatives are used in the query direction only).
        document_ids: an id per row's positive document; equal ids mark duplicates, not negatives.
        reduction: "mean", "sum" or "none".
    """
    check.pair("query", query, "document", document)
    t = check.positive_number("temperature", temperature)
    check.choice("reduction", reduction, check.REDUCTIONS)
    if not isinstance(symmetric, bool):
        raise TypeError(f"`symmetric` must be a bool, got {type(symmetric).__name__}")
    dt = check.compute_dtype(query, document)
    n = None
    if negatives is not None:
        check.embeddings("negatives", negatives, 2, shape_hint="(M, D)")
        check.same_dim("query", query, "negatives", negatives)
        dt = check.compute_dtype(query, document, negatives)
        n = check.normalize(negatives, dt) if negatives.shape[0] else None
    ids = None
    if document_ids is not None:
        ids = check.labels(document_ids, query.shape[0], name="document_ids")
    q, d, scale = check.normalize(query, dt), check.normalize(document, dt), 1.0 / t
    if n is None and q.shape[0] < 2:
        raise ValueError("`multiple_negatives_ranking` needs a batch of at least 2 pairs or some `negatives`, got B=1")
    l_pos = (q * d).sum(1) * scale                                            # (B,)
    per = _direction(q, d, n, l_pos, scale, ids, ids)
    if symmetric:
        per = 0.5 * (per + _direction(d, q, None, l_pos, scale, ids, ids))
    if reduction == "mean":
        per = per.mean()
    elif reduction == "sum":
        per = per.sum()
    return per.to(query.dtype)
