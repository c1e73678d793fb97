"""Tiled log-sum-exp over a similarity matrix that is never held whole in memory.

Every softmax-family contrastive loss in contrastlab (InfoNCE, NT-Xent, SupCon, CLIP, debiased,
decoupled and hard-negative variants, uniformity) reduces to one quadratic-cost primitive,

    lse_i = log  sum_{j allowed}  exp(scale * <x_i, y_j>)          (and optionally the columns'),

plus terms that cost O(N D). :func:`tiled_lse` computes it tile by tile with a custom autograd
function, so peak memory grows as O((N + M) D) plus a fixed tile budget, and the value and the
gradient equal the plain formula to float rounding, at any scale.

Example::

    >>> import torch
    >>> from contrastlab.losses.lse import tiled_lse
    >>> z = torch.nn.functional.normalize(torch.randn(6, 4, dtype=torch.float64), dim=1)
    >>> plain = (z @ z.T / 0.5).fill_diagonal_(float("-inf")).logsumexp(1)
    >>> torch.allclose(tiled_lse(z, scale=2.0, exclude_diag=True), plain)
    True

How it is fast and exact:

* **Symmetric mode** (``y is None``, the NT-Xent / SupCon case): only tiles on and above the
  diagonal are computed; each gives row sums and, transposed, column sums. The backward uses
  ``dL/dz = scale * Q z`` with ``Q = P * w_i + P^T * w_j``, so forward + backward cost two products
  of size N x N x D instead of the four a plain implementation needs.
* **No shift where none is needed**: when ``|scale| * max|x| * max|y|`` (Cauchy-Schwarz) is below
  60, every logit lies in [-60, 60], so ``exp(logit)`` neither overflows a sum nor leaves the normal
  float32 range, and the tile needs no max pass (the usual temperatures, >= 1/60 for unit vectors).
* **Running row maximum** otherwise (low temperature): each row's sum is kept relative to the
  largest logit seen so far and rescaled when a tile raises it, as ``log_softmax`` does with the
  row maximum, so no row ever underflows or overflows. Symmetric and two-sided tiles exponentiate
  twice, once against the rows' maxima and once against the columns'.
* **Weights from the sums**: the backward's softmax weights are ``E_ij / s_i`` with the row sums
  ``s_i`` kept from the forward, never ``exp(shift - lse_i)``, which would put the rounding of a
  large ``lse`` into every weight of the row.
* **Tile cache**: the forward keeps as many tiles as fit in :data:`CACHE_BYTES` and the backward
  recomputes only the others. Small problems are never recomputed.

A loss whose positive sits inside the sum should leave it out (``exclude_diag`` or ``ids``) and add
it back as ``log1p_exp(lse_negatives - l_pos)`` = ``log(1 + sum_k exp(l_k - l_pos))``: that form is
never negative, and on a solved batch its gradient is the exact ``~exp(-gap)``, where subtracting
``l_pos`` after the log-sum-exp leaves the rounding of two large, nearly equal numbers.

Double backward is not supported (the function is ``once_differentiable``).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

__all__ = ["tiled_lse", "log1p_exp", "TILE", "CACHE_BYTES"]

#: Side of a square tile of the similarity matrix.
TILE = 1024
#: Up to this many bytes of tiles are kept between forward and backward (the rest is recomputed).
#: A constant, so peak memory stays O((N + M) D) plus this budget plus a few tiles.
CACHE_BYTES = 512 * 2**20
#: Below this bound on |logit| exp() needs no shift: a sum of < 3e12 terms of at most e^60 cannot
#: overflow float32 (3.4e38), and e^-60 is far above its smallest normal number (e^-87).
_NO_SHIFT_BOUND = 60.0
#: A shorter ``period`` puts more than TILE / 32 diagonals in a tile: ids are then cheaper.
_MIN_PERIOD = 64


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


def _safe(r):
    """A running maximum as a shift: -inf (nothing allowed yet) becomes 0, so exp(-inf - 0) = 0."""
    return torch.where(torch.isneginf(r), torch.zeros_like(r), r)


def _raise_max(r, s, a, b, tile_max):
    """Lift the running maxima r[a:b] to include ``tile_max``, rescaling the sums s[a:b]; the new shift."""
    old = r[a:b]
    new = torch.maximum(old, tile_max)
    s[a:b].mul_(torch.where(new == old, torch.ones_like(old), torch.exp(old - new)))   # -inf == -inf: 1
    r[a:b] = new
    return _safe(new)


class _TiledLSE(torch.autograd.Function):
    """Row (and optionally column) log-sum-exp of ``scale * x @ y.T`` with exclusions.

    ``y is None`` selects the symmetric mode (y = x). ``track_max`` keeps a running maximum per row
    (and per column side) as the shift; otherwise the shift is 0. Excluded entries: with
    ``exclude_diag = p > 0``, every (i, j) with j - i a multiple of p (p >= N: the diagonal only), or
    every (i, j) with ``row_ids[i] == col_ids[j]``.
    """

    @staticmethod
    def forward(ctx, x, y, scale, track_max, exclude_diag, row_ids, col_ids, want_cols, targets):
        symmetric = y is None
        yy = x if symmetric else y
        n, m = x.shape[0], yy.shape[0]
        xs = x * scale                                                     # (N, D)
        tiles = list(_tiles(n, m, TILE, symmetric))
        budget, keep = CACHE_BYTES // x.element_size(), []                 # cache the first tiles that fit
        for r0, r1, c0, c1 in tiles:
            size = (r1 - r0) * (c1 - c0) * (2 if track_max and _col_side(symmetric, want_cols, r0, c0) else 1)
            keep.append(size <= budget)
            budget -= size if keep[-1] else 0
        cache = [None] * len(tiles)
        full = min(TILE, n) * min(TILE, m)
        row_s, col_s = x.new_zeros(n), (x.new_zeros(m) if want_cols else None)
        row_r = x.new_full((n,), float("-inf")) if track_max else None
        col_r = x.new_full((m,), float("-inf")) if track_max and want_cols else None
        # the column side of a tile adds to the rows' state in symmetric mode, to the columns' otherwise
        side_s, side_r = (row_s, row_r) if symmetric else (col_s, col_r)

        def body(k, tile, st):
            r0, r1, c0, c1 = tile
            shape = (r1 - r0, c1 - c0)
            cols = _col_side(symmetric, want_cols, r0, c0)
            if keep[k]:
                out, out2 = x.new_empty(shape), None
            else:
                out = _scratch(st, "buf", x, full, shape)
                out2 = _scratch(st, "buf2", x, full, shape) if track_max and cols else None
            if not track_max:
                e = _tile_exp(xs, yy, r0, r1, c0, c1, out, exclude_diag, row_ids, col_ids)
                row_s[r0:r1] += e.sum(1)
                if cols:
                    side_s[c0:c1] += e.sum(0)
                cache[k] = (e, None) if keep[k] else None
                return
            logits = _tile_logits(xs, yy, r0, r1, c0, c1, out, exclude_diag, row_ids, col_ids)
            ref_r = _raise_max(row_r, row_s, r0, r1, logits.amax(1))
            ref_c = _raise_max(side_r, side_s, c0, c1, logits.amax(0)) if cols else None
            if keep[k]:                                                    # exponentiated once every max is known
                cache[k] = logits
                return
            _exp_and_sum(logits, out2, ref_r, ref_c, row_s, side_s, r0, r1, c0, c1)

        _for_tiles(tiles, body, {"buf": None, "buf2": None})
        if track_max:                   # cached tiles against the final maxima: as the backward recomputes them
            for k, (r0, r1, c0, c1) in enumerate(tiles):
                if keep[k]:
                    cols = _col_side(symmetric, want_cols, r0, c0)
                    out2 = x.new_empty(r1 - r0, c1 - c0) if cols else None
                    cache[k] = _exp_and_sum(cache[k], out2, _safe(row_r[r0:r1]),
                                            _safe(side_r[c0:c1]) if cols else None, row_s, side_s, r0, r1, c0, c1)
        row_lse = row_s.log() if row_r is None else row_s.log().add_(row_r)
        if want_cols:
            col_lse = col_s.log() if col_r is None else col_s.log().add_(col_r)
        else:
            col_lse = x.new_empty(0)
        ctx.save_for_backward(x, y, row_ids, col_ids, row_s, row_r, col_s, col_r)
        ctx.scale, ctx.track_max, ctx.exclude_diag, ctx.want_cols = scale, track_max, exclude_diag, want_cols
        ctx.cache, ctx.targets = cache, targets
        if not want_cols:
            ctx.mark_non_differentiable(col_lse)
        return row_lse, col_lse

    @staticmethod
    @once_differentiable
    def backward(ctx, g_row, g_col):
        x, y, row_ids, col_ids, row_s, row_r, col_s, col_r = ctx.saved_tensors
        symmetric, track_max = y is None, ctx.track_max
        yy = x if symmetric else y
        n, m = x.shape[0], yy.shape[0]
        w = _weights(g_row, row_s)                                         # (N,) g_i / s_i
        v = _weights(g_col, col_s) if ctx.want_cols else None              # (M,)
        side_w, side_r = (w, row_r) if symmetric else (v, col_r)
        need_x = ctx.needs_input_grad[0]
        need_y = (not symmetric) and ctx.needs_input_grad[1]
        xs = x * ctx.scale
        tiles = list(_tiles(n, m, TILE, symmetric))
        cache = ctx.cache if ctx.cache is not None else [None] * len(tiles)   # None after a first backward
        full = min(TILE, n) * min(TILE, m)
        safe_r = _safe(row_r) if track_max else None
        safe_side = _safe(side_r) if track_max and side_r is not None else None
        tg = None
        if ctx.targets is not None and g_row is not None:                  # -g_i a_i on each target logit
            row_tid, col_tid, a, blocks = ctx.targets
            ga = g_row * a
            tg = (row_tid, col_tid, ga, ga if symmetric else None, blocks)

        def body(k, tile, st):
            r0, r1, c0, c1 = tile
            shape = (r1 - r0, c1 - c0)
            cols = _col_side(symmetric, ctx.want_cols, r0, c0)
            diag_tile = symmetric and c0 == r0
            hit = cache[k]
            scratch = hit is None
            wr = w[r0:r1]
            wc = side_w[c0:c1] if cols else None
            if not track_max:
                if scratch:
                    e = _tile_exp(xs, yy, r0, r1, c0, c1, _scratch(st, "e", x, full, shape),
                                  ctx.exclude_diag, row_ids, col_ids)
                else:
                    e = hit[0]
                if cols or diag_tile:                                      # Q = E * (w_i + w_j)
                    cw = wr if diag_tile else wc
                    q = torch.add(wr.unsqueeze(1), cw.unsqueeze(0), out=_scratch(st, "q", x, full, shape))
                    q.mul_(e)
                elif scratch:
                    q = e.mul_(wr.unsqueeze(1))                            # E is scratch: reuse it
                else:
                    q = e * wr.unsqueeze(1)                                # keep the cached tile intact
            else:
                if scratch:                                                # against the final maxima, as cached
                    logits = _tile_logits(xs, yy, r0, r1, c0, c1, _scratch(st, "e", x, full, shape),
                                          ctx.exclude_diag, row_ids, col_ids)
                    e2 = None
                    if cols:
                        e2 = torch.sub(logits, safe_side[c0:c1].unsqueeze(0),
                                       out=_scratch(st, "e2", x, full, shape)).exp_()
                    e = logits.sub_(safe_r[r0:r1].unsqueeze(1)).exp_()
                else:
                    e, e2 = hit
                q = torch.mul(e, wr.unsqueeze(1), out=_scratch(st, "q", x, full, shape))
                if cols:
                    q.addcmul_(e2, wc.unsqueeze(0))
                elif diag_tile:                                            # its transpose is its own column side
                    q = q + q.t()
            if tg is not None:
                _subtract_targets(q, tg, r0, r1, c0, c1, cols or diag_tile, ctx.exclude_diag, row_ids, col_ids)
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

        st = _for_tiles(tiles, body, {"e": None, "e2": None, "q": None,
                                      "gx": torch.zeros_like(x), "gy": torch.zeros_like(yy) if need_y else None})
        ctx.cache = None
        grad_x = st["gx"].mul_(ctx.scale) if need_x else None
        grad_y = st["gy"].mul_(ctx.scale) if need_y else None
        return grad_x, grad_y, None, None, None, None, None, None, None


#: A tile meeting more target blocks than this subtracts them through one dense class comparison instead.
_MAX_BLOCKS = 16


def _subtract_targets(q, tg, r0, r1, c0, c1, col_side, exclude_diag, row_ids, col_ids):
    """q_ij -= ga_i (+ ga_j on a column side) where row i and column j share a target id and (i, j) is allowed.

    The ids are sorted, so a tile's targets are the rectangles where a row class meets the same column class;
    the subtraction is on the logits' gradient, where the softmax weights and the targets' 1 / |P| cancel.
    """
    row_tid, col_tid, ga_r, ga_c, (row_blocks, col_blocks) = tg
    hits = []
    for t, (a0, a1) in row_blocks.items():
        if a1 <= r0 or a0 >= r1 or t not in col_blocks:
            continue
        b0, b1 = col_blocks[t]
        if b1 > c0 and b0 < c1:
            hits.append((max(a0, r0), min(a1, r1), max(b0, c0), min(b1, c1)))
    if not hits:
        return
    dense = len(hits) > _MAX_BLOCKS                                        # many small classes: one dense pass
    for a0, a1, b0, b1 in [(r0, r1, c0, c1)] if dense else hits:
        sub = ga_r[a0:a1].unsqueeze(1).expand(a1 - a0, b1 - b0)
        sub = sub + ga_c[b0:b1].unsqueeze(0) if col_side else sub.clone()
        if dense:
            sub.masked_fill_(row_tid[a0:a1].unsqueeze(1) != col_tid[b0:b1].unsqueeze(0), 0.0)
        if row_ids is not None:
            sub.masked_fill_(row_ids[a0:a1].unsqueeze(1) == col_ids[b0:b1].unsqueeze(0), 0.0)
        elif exclude_diag:
            for k in _diagonals(a0, a1, b0, b1, exclude_diag):
                sub.diagonal(k).zero_()
        q[a0 - r0:a1 - r0, b0 - c0:b1 - c0].sub_(sub)


def _exp_and_sum(logits, out2, ref_r, ref_c, row_s, side_s, r0, r1, c0, c1):
    """exp of a logits tile against the rows' shifts (in place) and, given ``ref_c``, the columns' (into
    ``out2``), each added to its sums; returns the pair (the second None without ``ref_c``)."""
    e2 = None
    if ref_c is not None:
        e2 = torch.sub(logits, ref_c.unsqueeze(0), out=out2).exp_()
        side_s[c0:c1] += e2.sum(0)
    e = logits.sub_(ref_r.unsqueeze(1)).exp_()
    row_s[r0:r1] += e.sum(1)
    return e, e2


def _col_side(symmetric, want_cols, r0, c0):
    """Whether a tile also feeds sums along its columns (off-diagonal symmetric tiles, or ``columns``)."""
    return want_cols or (symmetric and c0 != r0)


def _scratch(st, key, x, full, shape):
    """A reusable (shape) view of one tile-sized scratch buffer."""
    if st[key] is None:
        st[key] = x.new_empty(full)
    return st[key][: shape[0] * shape[1]].view(shape)


def _tile_exp(xs, y, r0, r1, c0, c1, out, exclude_diag, row_ids, col_ids):
    """exp(scale * x_r @ y_c.T) for one tile, with excluded entries set to zero."""
    torch.mm(xs[r0:r1], y[c0:c1].t(), out=out)                           # (Tr, Tc)
    out.exp_()
    if row_ids is not None:
        out.masked_fill_(row_ids[r0:r1].unsqueeze(1) == col_ids[c0:c1].unsqueeze(0), 0.0)
    elif exclude_diag:
        for k in _diagonals(r0, r1, c0, c1, exclude_diag):
            out.diagonal(k).zero_()                                      # global j - i = multiple of p
    return out


def _tile_logits(xs, y, r0, r1, c0, c1, out, exclude_diag, row_ids, col_ids):
    """scale * x_r @ y_c.T for one tile, with excluded entries set to -inf."""
    torch.mm(xs[r0:r1], y[c0:c1].t(), out=out)                           # (Tr, Tc)
    if row_ids is not None:
        out.masked_fill_(row_ids[r0:r1].unsqueeze(1) == col_ids[c0:c1].unsqueeze(0), float("-inf"))
    elif exclude_diag:
        for k in _diagonals(r0, r1, c0, c1, exclude_diag):
            out.diagonal(k).fill_(float("-inf"))
    return out


def _diagonals(r0, r1, c0, c1, period):
    """Local diagonal offsets of a tile on which the global j - i is a multiple of ``period``."""
    lo, hi = c0 - (r1 - 1), (c1 - 1) - r0                                # the tile's range of j - i
    first = -(-lo // period) * period
    return [d + r0 - c0 for d in range(first, hi + 1, period)]


def _weights(g, s):
    """w_i = g_i / s_i: the softmax weights' row factor (0 where unused or where nothing is allowed)."""
    if g is None:
        return torch.zeros_like(s)
    ok = (g != 0) & (s > 0)
    return torch.where(ok, g / torch.where(ok, s, torch.ones_like(s)), torch.zeros_like(s))


def log1p_exp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + exp(x))`` (softplus), exact at any x in float32 and float64, with gradient sigmoid(x).

    ``torch.nn.functional.softplus`` returns x itself past x = 20, off by up to e^-20 = 2e-9.

    Shape: any; the output has the input's shape.
    """
    return torch.logaddexp(x, torch.zeros_like(x))


def tiled_lse(x: torch.Tensor, y: torch.Tensor | None = None, *, scale: float = 1.0,
              exclude_diag: bool = False, period: int = 0, ids: torch.Tensor | tuple | None = None,
              columns: bool = False, targets: tuple | None = None):
    """Log-sum-exp over the rows (and optionally the columns) of ``scale * x @ y.T``.

    Shape:
        x: (N, D); y: (M, D), or None for y = x (symmetric mode, the fast path for self-similarity).
        Returns (N,) row values, or a pair ((N,), (M,)) when ``columns=True``.

    Args:
        scale: multiplies every logit (1 / temperature). A float; fold a learnable scale into ``x``.
        exclude_diag: leave out entries i == j (needs N == M).
        period: with ``exclude_diag``, also leave out the entries whose j - i is a multiple of
            ``period``: for V views stacked view-major (row ``v * B + b``, ``period=B``), each view's
            other views, e.g. NT-Xent's positives (cheaper than the equivalent ``ids``).
        ids: leave out entries whose ids match: a (N,) tensor in symmetric mode (the diagonal is then
            left out too), or a pair ((N,), (M,)) of row and column ids.
        columns: also return the column log-sum-exp (cross mode only).
        targets: ``(row_tid, col_tid, a, s)`` returns ``lse_i - a_i s_i`` instead, where ``s_i`` (computed by
            the caller in O(N D), e.g. from class sums; its gradient is not used) is the sum of the allowed
            logits of row i whose column has ``col_tid == row_tid[i]``. The gradient of that term is taken on
            the tiles, subtracted from the softmax weights before they multiply the vectors: where they cancel
            (SupCon's ``softmax - 1 / |P|`` on collapsed classes) the result is as exact as ``log_softmax``'s,
            not one rounding of the gradient's size. ``row_tid`` and ``col_tid`` (integers) must be sorted;
            symmetric mode takes ``col_tid = row_tid``; not with ``columns``.

    A row with nothing allowed gets ``-inf``. The inputs must be float32 or float64.
    """
    symmetric = y is None
    yy = x if symmetric else y
    n, m = x.shape[0], yy.shape[0]
    if symmetric and columns:
        raise ValueError("`columns` is redundant in symmetric mode: the column values equal the rows'")
    if exclude_diag and n != m:
        raise ValueError(f"`exclude_diag` needs a square matrix, got {n} rows and {m} columns")
    if not isinstance(period, int) or isinstance(period, bool) or period < 0 or (period and not exclude_diag):
        raise ValueError(f"`period` must be an int >= 0, used with `exclude_diag`, got {period!r}")
    if ids is not None:
        row_ids, col_ids = (ids, ids) if torch.is_tensor(ids) else ids
        for what, got, want in (("row", row_ids, n), ("column", col_ids, m)):
            if got.dim() != 1 or got.shape[0] != want:
                raise ValueError(f"`ids` must hold one id per {what} ({want}), got {got.shape[0] if got.dim() else 0}")
        exclude_diag = False
    elif exclude_diag and 0 < period < _MIN_PERIOD and period < n:           # many diagonals a tile: ids instead
        row_ids = torch.arange(n, device=x.device) % period
        col_ids, exclude_diag = (row_ids if symmetric else torch.arange(m, device=x.device) % period), False
    else:
        row_ids = col_ids = None
    exclude_diag = (period or n) if exclude_diag else 0                        # the kernel's form: a period
    tg, sub = None, None
    if targets is not None:
        row_tid, col_tid, a, s = targets
        if columns:
            raise ValueError("`targets` is not supported with `columns`")
        col_tid = row_tid if symmetric else col_tid
        tg = (row_tid, col_tid, a.detach().to(x.dtype), (_blocks(row_tid, n), _blocks(col_tid, m)))
        sub = a.detach().to(x.dtype) * s.detach().to(x.dtype)
    with torch.no_grad():
        bound = abs(scale) * float(x.norm(dim=1).max()) * float(yy.norm(dim=1).max()) if n and m else 0.0
    row_lse, col_lse = _TiledLSE.apply(x, None if symmetric else y, float(scale), bound >= _NO_SHIFT_BOUND,
                                       exclude_diag, row_ids, col_ids, columns, tg)
    if sub is not None:
        row_lse = row_lse - sub
    return (row_lse, col_lse) if columns else row_lse


def _blocks(tid, n):
    """{id: (start, end)} of a sorted id vector of length n."""
    if tid.dim() != 1 or tid.shape[0] != n:
        raise ValueError(f"`targets` ids must hold one id per row/column ({n}), got shape {tuple(tid.shape)}")
    if n > 1 and bool((tid[1:] < tid[:-1]).any()):
        raise ValueError("`targets` ids must be sorted")
    vals, counts = torch.unique_consecutive(tid, return_counts=True)
    ends = counts.cumsum(0).tolist()
    return {int(v): (e - c, e) for v, c, e in zip(vals.tolist(), counts.tolist(), ends)}
