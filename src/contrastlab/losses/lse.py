"""Tiled log-sum-exp over a similarity matrix that is never held whole in memory.

Every softmax-family contrastive loss in contrastlab (InfoNCE, NT-Xent, SupCon, CLIP, debiased,
decoupled and hard-negative variants, uniformity) reduces to one quadratic-cost primitive,

    lse_i = log  sum_{j allowed}  exp(scale * <x_i, y_j>)          (and optionally the columns'),

plus terms that cost O(N D). :func:`tiled_lse` computes it tile by tile with a custom autograd
function, so peak memory grows as O((N + M) D) plus a fixed tile budget, and the value and the
gradient equal the plain formula.

Example::

    >>> import torch
    >>> from contrastlab.losses.lse import tiled_lse
    >>> z = torch.nn.functional.normalize(torch.randn(6, 4, dtype=torch.float64), dim=1)
    >>> plain = (z @ z.T / 0.5).fill_diagonal_(float("-inf")).logsumexp(1)
    >>> torch.allclose(tiled_lse(z, scale=2.0, exclude_diag=True), plain)
    True

How it is fast:

* **Symmetric mode** (``y is None``, the NT-Xent / SupCon case): only tiles on and above the
  diagonal are computed; each gives row sums and, transposed, column sums. The backward uses
  ``dL/dz = scale * Q z`` with ``Q = E * (w_i + w_j)``, so forward + backward cost two products of
  size N x N x D instead of the four a plain implementation needs.
* **Constant shift** instead of a running max: for any inputs, ``scale * <x_i, y_j>`` is at most
  ``|scale| * max|x| * max|y|`` (Cauchy-Schwarz), so ``exp(logit - shift)`` never overflows and the
  tile needs no max pass. A row whose sum would underflow (possible only when ``scale`` is large,
  e.g. temperature < 0.025, and the row has no near neighbour) is recomputed exactly with its own
  row maximum, so the result stays exact.
* **Tile cache**: the forward keeps as many tiles as fit in :data:`CACHE_BYTES` and the backward
  recomputes only the others. Small problems are never recomputed.

Double backward is not supported (the function is ``once_differentiable``).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

__all__ = ["tiled_lse", "TILE", "CACHE_BYTES"]

#: Side of a square tile of the similarity matrix.
TILE = 1024
#: Up to this many bytes of tiles are kept between forward and backward (the rest is recomputed).
#: A constant, so peak memory stays O((N + M) D) plus this budget plus two tiles.
CACHE_BYTES = 512 * 2**20
#: When every logit is below this bound, exp() needs no shift (fp32 overflows past ~88).
_NO_SHIFT_BOUND = 80.0
#: Rows whose shifted sum falls below exp(_UNDERFLOW_LOG) are recomputed with their exact maximum.
_UNDERFLOW_LOG = -60.0


def _tiles(n: int, m: int, tile: int, symmetric: bool):
    for r0 in range(0, n, tile):
        r1 = min(r0 + tile, n)
        for c0 in range(r0 if symmetric else 0, m, tile):
            yield r0, r1, c0, min(c0 + tile, m)


def _for_tiles(tiles, body, state):
    """Run ``body(k, tile, state)`` over the tiles and return the state it accumulated into.

    Splitting the tiles over single-threaded CPU workers was measured (2-core VM, interleaved A/B)
    and gave no gain beyond noise, so the loop stays sequential and each op uses every thread.
    """
    for k, t in enumerate(tiles):
        body(k, t, state)
    return state


class _TiledLSE(torch.autograd.Function):
    """Row (and optionally column) log-sum-exp of ``scale * x @ y.T`` with exclusions.

    ``y is None`` selects the symmetric mode (y = x). ``shift`` is a float, or a (N,) tensor of
    per-row shifts (cross mode, rows only). Excluded entries: the diagonal (``exclude_diag``), or
    every (i, j) with ``row_ids[i] == col_ids[j]``.
    """

    @staticmethod
    def forward(ctx, x, y, scale, shift, exclude_diag, row_ids, col_ids, want_cols):
        symmetric = y is None
        yy = x if symmetric else y
        n, m = x.shape[0], yy.shape[0]
        xs = x * scale                                                     # (N, D)
        neg_shift = -shift if isinstance(shift, float) else (-shift).unsqueeze(1)
        tiles = list(_tiles(n, m, TILE, symmetric))
        budget, keep = CACHE_BYTES // x.element_size(), []                 # cache the first tiles that fit
        for r0, r1, c0, c1 in tiles:
            keep.append((r1 - r0) * (c1 - c0) <= budget)
            budget -= (r1 - r0) * (c1 - c0) if keep[-1] else 0
        cache = [None] * len(tiles)
        full = min(TILE, n) * min(TILE, m)


        def body(k, tile, st):
            r0, r1, c0, c1 = tile
            if keep[k]:
                out = x.new_empty(r1 - r0, c1 - c0)
            else:
                st["buf"] = x.new_empty(full) if st["buf"] is None else st["buf"]
                out = st["buf"][: (r1 - r0) * (c1 - c0)].view(r1 - r0, c1 - c0)
            e = _tile_exp(xs, yy, r0, r1, c0, c1, neg_shift, out, exclude_diag, row_ids, col_ids)
            st["row"][r0:r1] += e.sum(1)
            if symmetric and c0 != r0:
                st["row"][c0:c1] += e.sum(0)
            if want_cols:
                st["col"][c0:c1] += e.sum(0)
            cache[k] = e if keep[k] else None

        st = _for_tiles(tiles, body, {"buf": None, "row": x.new_zeros(n), "col": x.new_zeros(m) if want_cols else None})
        row_lse = st["row"].log_().add_(shift)
        col_lse = st["col"].log_().add_(shift) if want_cols else x.new_empty(0)
        ctx.save_for_backward(x, y, row_lse, col_lse, row_ids, col_ids,
                              shift if torch.is_tensor(shift) else None)
        ctx.scale, ctx.shift_value, ctx.exclude_diag, ctx.want_cols = scale, shift, exclude_diag, want_cols
        ctx.cache = cache
        if not want_cols:
            ctx.mark_non_differentiable(col_lse)
        return row_lse, col_lse

    @staticmethod
    @once_differentiable
    def backward(ctx, g_row, g_col):
        x, y, row_lse, col_lse, row_ids, col_ids, shift_t = ctx.saved_tensors
        shift = shift_t if shift_t is not None else ctx.shift_value
        symmetric = y is None
        yy = x if symmetric else y
        n, m = x.shape[0], yy.shape[0]
        w = _weights(g_row, row_lse, shift)                                # (N,)
        v = _weights(g_col, col_lse, shift) if ctx.want_cols else None     # (M,)
        need_x = ctx.needs_input_grad[0]
        need_y = (not symmetric) and ctx.needs_input_grad[1]
        xs = x * ctx.scale
        neg_shift = -shift if isinstance(shift, float) else (-shift).unsqueeze(1)
        tiles = list(_tiles(n, m, TILE, symmetric))
        cache = ctx.cache if ctx.cache is not None else [None] * len(tiles)   # None after a first backward
        full = min(TILE, n) * min(TILE, m)
        two_sided = symmetric or v is not None                             # Q = E * (w_i + w_j)


        def body(k, tile, st):
            r0, r1, c0, c1 = tile
            shape = (r1 - r0, c1 - c0)
            size = shape[0] * shape[1]
            e = cache[k]
            scratch = e is None
            if scratch:
                st["e"] = x.new_empty(full) if st["e"] is None else st["e"]
                e = _tile_exp(xs, yy, r0, r1, c0, c1, neg_shift, st["e"][:size].view(shape),
                              ctx.exclude_diag, row_ids, col_ids)
            if two_sided:
                cw = w[r0:r1] if (symmetric and c0 == r0) else (w[c0:c1] if symmetric else v[c0:c1])
                q = torch.add(w[r0:r1].unsqueeze(1), cw.unsqueeze(0), out=st["q"][:size].view(shape))
                q.mul_(e)
            elif scratch:
                q = e.mul_(w[r0:r1].unsqueeze(1))                          # E is scratch: reuse it
            else:
                q = e * w[r0:r1].unsqueeze(1)                              # keep the cached tile intact
            gx, gy = st["gx"], st["gy"]
            if symmetric:
                gx[r0:r1].addmm_(q, x[c0:c1])
                if c0 != r0:
                    gx[c0:c1].addmm_(q.t(), x[r0:r1])
            else:
                if need_x:
                    gx[r0:r1].addmm_(q, y[c0:c1])
                if need_y:
                    gy[c0:c1].addmm_(q.t(), x[r0:r1])

        st = _for_tiles(tiles, body, {"e": None, "q": x.new_empty(full) if two_sided else None,
                                      "gx": torch.zeros_like(x), "gy": torch.zeros_like(yy) if need_y else None})
        ctx.cache = None
        grad_x = st["gx"].mul_(ctx.scale) if need_x else None
        grad_y = st["gy"].mul_(ctx.scale) if need_y else None
        return grad_x, grad_y, None, None, None, None, None, None


def _tile_exp(xs, y, r0, r1, c0, c1, neg_shift, out, exclude_diag, row_ids, col_ids):
    """exp(scale * x_r @ y_c.T - shift) for one tile, with excluded entries set to zero."""
    bias = neg_shift if isinstance(neg_shift, float) else neg_shift[r0:r1]
    if isinstance(bias, float):
        torch.mm(xs[r0:r1], y[c0:c1].t(), out=out)                       # (Tr, Tc)
        if bias != 0.0:
            out.add_(bias)
    else:
        torch.addmm(bias, xs[r0:r1], y[c0:c1].t(), out=out)
    out.exp_()
    if row_ids is not None:
        out.masked_fill_(row_ids[r0:r1].unsqueeze(1) == col_ids[c0:c1].unsqueeze(0), 0.0)
    elif exclude_diag and r0 < c1 and c0 < r1:
        out.diagonal(r0 - c0).zero_()                                    # global i == j
    return out


def _weights(g, lse, shift):
    """w_i = g_i * exp(shift_i - lse_i): the softmax weights' row factor, 0 where unused."""
    if g is None:
        return torch.zeros_like(lse)
    ok = (g != 0) & torch.isfinite(lse)
    return torch.where(ok, g * torch.exp(torch.where(ok, shift - lse, torch.zeros_like(lse))), torch.zeros_like(lse))


def _allowed_counts(n, m, exclude_diag, row_ids, col_ids):
    """How many entries of each row are not excluded."""
    if row_ids is not None:
        uniq, counts = torch.unique(col_ids, return_counts=True)
        pos = torch.searchsorted(uniq, row_ids).clamp_(max=uniq.numel() - 1)
        same = torch.where(uniq[pos] == row_ids, counts[pos], torch.zeros_like(counts[pos]))
        return m - same
    return torch.full((n,), m - 1 if exclude_diag else m, dtype=torch.long)


@torch.no_grad()
def _exact_row_max(xs, y, row_ids, col_ids):
    """Max over allowed entries of each row of xs @ y.T, by column tiles (rows are few)."""
    best = xs.new_full((xs.shape[0],), float("-inf"))
    for c0 in range(0, y.shape[0], TILE):
        s = xs @ y[c0:c0 + TILE].t()
        s.masked_fill_(row_ids.unsqueeze(1) == col_ids[c0:c0 + TILE].unsqueeze(0), float("-inf"))
        best = torch.maximum(best, s.amax(1))
    return best


def _fix_underflow(lse, x, y, scale, shift, exclude_diag, row_ids, col_ids):
    """Recompute, with each row's exact maximum as its shift, the rows whose sum underflowed.

    The common case (no row below the threshold) costs one comparison; ids and counts are built only
    when some row is a candidate.
    """
    low = lse < shift + _UNDERFLOW_LOG
    if not bool(low.any()):
        return lse
    n, m, dev = x.shape[0], y.shape[0], x.device
    if row_ids is None:                                                    # express the exclusion as ids
        row_ids = torch.arange(n, device=dev) if exclude_diag else torch.full((n,), -2, device=dev)
        col_ids = torch.arange(m, device=dev) if exclude_diag else torch.full((m,), -1, device=dev)
    allowed = _allowed_counts(n, m, False, row_ids, col_ids).to(dev)
    idx = (low & (allowed > 0)).nonzero().squeeze(1)                      # rows with nothing allowed stay -inf
    if idx.numel() == 0:
        return lse
    sub_ids = row_ids[idx]
    row_shift = _exact_row_max(x[idx].detach() * scale, y.detach(), sub_ids, col_ids)
    fixed, _ = _TiledLSE.apply(x[idx], y, scale, row_shift, False, sub_ids, col_ids, False)
    return lse.index_put((idx,), fixed)


def tiled_lse(x: torch.Tensor, y: torch.Tensor | None = None, *, scale: float = 1.0,
              exclude_diag: bool = False, ids: torch.Tensor | tuple | None = None,
              columns: bool = False):
    """Log-sum-exp over the rows (and optionally the columns) of ``scale * x @ y.T``.

    Shape:
        x: (N, D); y: (M, D), or None for y = x (symmetric mode, the fast path for self-similarity).
        Returns (N,) row values, or a pair ((N,), (M,)) when ``columns=True``.

    Args:
        scale: multiplies every logit (1 / temperature). A float; fold a learnable scale into ``x``.
        exclude_diag: leave out entries i == j (needs N == M).
        ids: leave out entries whose ids match: a (N,) tensor in symmetric mode (the diagonal is then
            left out too), or a pair ((N,), (M,)) of row and column ids.
        columns: also return the column log-sum-exp (cross mode only).

    A row with nothing allowed gets ``-inf``. The inputs must be float32 or float64.
    """
    symmetric = y is None
    yy = x if symmetric else y
    n, m = x.shape[0], yy.shape[0]
    if symmetric and columns:
        raise ValueError("`columns` is redundant in symmetric mode: the column values equal the rows'")
    if exclude_diag and n != m:
        raise ValueError(f"`exclude_diag` needs a square matrix, got {n} rows and {m} columns")
    if ids is not None:
        row_ids, col_ids = (ids, ids) if torch.is_tensor(ids) else ids
        for what, got, want in (("row", row_ids, n), ("column", col_ids, m)):
            if got.dim() != 1 or got.shape[0] != want:
                raise ValueError(f"`ids` must hold one id per {what} ({want}), got {got.shape[0] if got.dim() else 0}")
        exclude_diag = False
    else:
        row_ids = col_ids = None
    with torch.no_grad():
        bound = abs(scale) * float(x.norm(dim=1).max()) * float(yy.norm(dim=1).max()) if n and m else 0.0
    shift = 0.0 if bound < _NO_SHIFT_BOUND else float(bound)                 # exp(logit) is safe unshifted
    row_lse, col_lse = _TiledLSE.apply(x, None if symmetric else y, float(scale), shift,
                                       exclude_diag, row_ids, col_ids, columns)
    # exact recomputation of rows (and columns) whose shifted sum underflowed
    row_lse = _fix_underflow(row_lse, x, yy, float(scale), shift, exclude_diag, row_ids, col_ids)
    if not columns:
        return row_lse
    col_lse = _fix_underflow(col_lse, yy, x, float(scale), shift, exclude_diag, col_ids, row_ids)
    return row_lse, col_lse

