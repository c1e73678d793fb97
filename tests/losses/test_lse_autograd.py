"""gradcheck of the tiled log-sum-exp's custom backward, in every mode, and its memory contract."""

import math

import pytest
import torch

import contrastlab.losses.lse as lse_mod
from contrastlab.losses import nt_xent, tiled_lse


@pytest.fixture(params=[(1024, lse_mod.CACHE_BYTES), (3, lse_mod.CACHE_BYTES), (3, 0)],
                ids=["one-tile", "tiles-cached", "tiles-recomputed"])
def tiling(request, monkeypatch):
    tile, cache = request.param
    monkeypatch.setattr(lse_mod, "TILE", tile)
    monkeypatch.setattr(lse_mod, "CACHE_BYTES", cache)


def _unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


MODES = {
    "symmetric, diagonal out": lambda x, y, ids: tiled_lse(x, scale=2.0, exclude_diag=True),
    "symmetric, ids out": lambda x, y, ids: tiled_lse(x, scale=2.0, ids=ids[: len(x)]),
    "cross": lambda x, y, ids: tiled_lse(x, y, scale=3.0),
    "cross, diagonal out": lambda x, y, ids: tiled_lse(x, y[: len(x)], scale=3.0, exclude_diag=True),
    "cross, rows and columns": lambda x, y, ids: torch.cat(tiled_lse(x, y, scale=3.0, columns=True)),
    "cross, ids out": lambda x, y, ids: tiled_lse(x, y, scale=3.0, ids=(ids[: len(x)], ids)),
    "running max, cross": lambda x, y, ids: tiled_lse(x, y, scale=250.0),
    "running max, symmetric": lambda x, y, ids: tiled_lse(x, scale=90.0, exclude_diag=True),
    "running max, rows and columns": lambda x, y, ids: torch.cat(tiled_lse(x, y, scale=70.0, columns=True)),
    "running max, ids out": lambda x, y, ids: tiled_lse(x, ids=ids[: len(x)], scale=90.0),
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_gradcheck(tiling, mode):
    x = _unit(7, 4, seed=1).requires_grad_()
    y = (_unit(9, 4, seed=2) * 1.3).requires_grad_()
    ids = torch.tensor([0, 1, 0, 2, 1, 0, 3, 2, 1])
    fn = MODES[mode]
    assert torch.autograd.gradcheck(lambda a, b: fn(a, b, ids), (x, y), eps=1e-6, atol=1e-6)


def test_unused_gradients_are_skipped_and_rows_without_entries_are_minus_inf():
    x = _unit(4, 3).requires_grad_()
    out = tiled_lse(x, scale=1.0, ids=torch.zeros(4, dtype=torch.long))  # every entry excluded
    assert torch.isneginf(out).all()
    (out.clamp(min=-1.0).sum()).backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_ids_of_the_wrong_length_are_refused():
    x = _unit(4, 3)
    with pytest.raises(ValueError, match=r"`ids` must hold one id per column \(9\), got 4"):
        tiled_lse(x, _unit(9, 3), ids=(torch.arange(4), torch.arange(4)))
    with pytest.raises(ValueError, match=r"`ids` must hold one id per row \(4\), got 3"):
        tiled_lse(x, ids=torch.arange(3))


def test_running_max_is_exact_where_a_constant_shift_would_underflow():
    """scale 400: rows whose best neighbour is far below the Cauchy-Schwarz bound would underflow it."""
    x = _unit(50, 3, seed=3)
    y = _unit(40, 3, seed=4)
    plain = (400.0 * x @ y.T).logsumexp(1)
    torch.testing.assert_close(tiled_lse(x, y, scale=400.0), plain, rtol=1e-12, atol=1e-9)


def test_memory_grows_linearly(monkeypatch):
    """With caching off, no tensor of size N x N exists: the largest allocation is one tile."""
    monkeypatch.setattr(lse_mod, "TILE", 64)
    monkeypatch.setattr(lse_mod, "CACHE_BYTES", 0)
    n = 1024
    largest = []
    real_new_empty = torch.Tensor.new_empty

    def spy(self, *size, **kw):
        out = real_new_empty(self, *size, **kw)
        largest.append(out.numel())
        return out

    monkeypatch.setattr(torch.Tensor, "new_empty", spy)
    a = torch.randn(n, 16, requires_grad=True)
    b = torch.randn(n, 16, requires_grad=True)
    nt_xent(a, b).backward()
    assert max(largest) <= 64 * 64


def test_float32_sums_do_not_overflow_below_the_no_shift_bound():
    """8000 identical unit vectors at scale 59.9 (no shift): each exp is e^59.9, their sum ~1e30, finite."""
    z = torch.ones(8000, 2) / 2 ** 0.5
    for scale in (59.9, 79.9):                         # 79.9: past the bound, the running maximum
        out = tiled_lse(z, scale=scale, exclude_diag=True)
        torch.testing.assert_close(out, torch.full_like(out, scale + float(torch.log(torch.tensor(7999.0)))))


def test_log1p_exp_is_exact_in_float64_past_softplus_threshold():
    x = torch.tensor([-800.0, -30.0, 0.0, 25.0, 800.0], dtype=torch.float64, requires_grad=True)
    want = torch.tensor([0.0, math.log1p(math.exp(-30.0)), math.log(2.0), 25.0 + math.log1p(math.exp(-25.0)), 800.0],
                        dtype=torch.float64)
    out = lse_mod.log1p_exp(x)
    torch.testing.assert_close(out, want, rtol=1e-15, atol=1e-300)
    (g,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(g, torch.sigmoid(x.detach()), rtol=1e-15, atol=1e-300)


@pytest.mark.parametrize("min_period", [1, 64], ids=["diagonals", "as-ids"])
@pytest.mark.parametrize("scale", [2.0, 90.0], ids=["no-shift", "running-max"])
@pytest.mark.parametrize("period", [2, 3, 4, 9])
@pytest.mark.parametrize("cross", [False, True])
def test_period_leaves_out_the_same_entries_as_ids(tiling, monkeypatch, min_period, scale, period, cross):
    monkeypatch.setattr(lse_mod, "_MIN_PERIOD", min_period)
    x = _unit(8, 4, seed=5).requires_grad_()
    y = _unit(8, 4, seed=6).requires_grad_() if cross else None
    ids = torch.arange(8) % period
    w = torch.arange(1.0, 9.0, dtype=torch.float64)

    def value_and_grads(**kw):
        out = tiled_lse(x, y, scale=scale, **kw)
        return (out, *torch.autograd.grad((w * out).sum(), [x] + ([y] if cross else [])))

    got = value_and_grads(exclude_diag=True, period=period)
    want = value_and_grads(ids=(ids, ids) if cross else ids)
    for g, v in zip(got, want):
        torch.testing.assert_close(g, v, rtol=1e-12, atol=1e-12)


def test_period_needs_exclude_diag():
    with pytest.raises(ValueError, match=r"`period` must be an int >= 0, used with `exclude_diag`, got 2"):
        tiled_lse(_unit(4, 3), period=2)


TARGET_CLS = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])      # sorted target ids, classes of 3, 2 and 4


def _with_targets(x, y, scale, symmetric, ids):
    """lse_i - a_i * (sum of the allowed same-class logits), its value from the plain matrix."""
    n = len(x)
    rt = TARGET_CLS[:n]
    ct = rt if symmetric else TARGET_CLS
    a = torch.linspace(0.2, 0.9, n, dtype=x.dtype)
    with torch.no_grad():
        yy = x if symmetric else y
        same = rt[:, None] == ct[None, :]
        same &= ~torch.eye(n, len(yy), dtype=torch.bool) if ids is None else ids[:n, None] != ids[None, :len(yy)]
        s = torch.where(same, scale * x @ yy.T, 0.0).sum(1)
    kw = {"exclude_diag": True} if ids is None else {"ids": ids[:n] if symmetric else (ids[:n], ids)}
    return tiled_lse(x, None if symmetric else y, scale=scale, targets=(rt, ct, a, s), **kw)


@pytest.mark.parametrize("dense", [False, True], ids=["blocks", "dense"])
@pytest.mark.parametrize("scale", [2.0, 90.0], ids=["no-shift", "running-max"])
@pytest.mark.parametrize("mode", ["symmetric, diagonal out", "symmetric, ids out", "cross, ids out"])
def test_gradcheck_with_targets(tiling, monkeypatch, mode, scale, dense):
    if dense:
        monkeypatch.setattr(lse_mod, "_MAX_BLOCKS", 0)
    x = _unit(7, 4, seed=1).requires_grad_()
    y = (_unit(9, 4, seed=2) * 1.3).requires_grad_()
    ids = torch.tensor([0, 1, 0, 2, 1, 0, 3, 2, 1]) if "ids" in mode else None
    symmetric = mode.startswith("symmetric")

    def fn(a, b):
        return _with_targets(a, b, scale, symmetric, ids)

    with torch.no_grad():                                        # the value: lse - a s, on the plain matrix
        n, yy = len(x), (x if symmetric else y)
        allowed = ~torch.eye(n, len(yy), dtype=torch.bool) if ids is None else ids[:n, None] != ids[None, :len(yy)]
        plain = (scale * x @ yy.T).masked_fill(~allowed, float("-inf")).logsumexp(1)
        rt, ct = TARGET_CLS[:n], (TARGET_CLS[:n] if symmetric else TARGET_CLS)
        s = torch.where(allowed & (rt[:, None] == ct[None, :]), scale * x @ yy.T, 0.0).sum(1)
        torch.testing.assert_close(fn(x, y), plain - torch.linspace(0.2, 0.9, n, dtype=x.dtype) * s)
    assert torch.autograd.gradcheck(fn, (x, y), eps=1e-6, atol=1e-6)


def test_targets_ids_must_be_sorted():
    x = _unit(4, 3)
    with pytest.raises(ValueError, match="must be sorted"):
        tiled_lse(x, exclude_diag=True, targets=(torch.tensor([0, 1, 0, 1]), None, torch.ones(4), torch.zeros(4)))
