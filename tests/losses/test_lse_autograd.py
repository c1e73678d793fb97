"""gradcheck of the tiled log-sum-exp's custom backward, in every mode, and its memory contract."""

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
    "underflow fallback": lambda x, y, ids: tiled_lse(x, y, scale=250.0),
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


def test_fallback_is_exact_where_the_shift_underflows():
    """scale 400: rows whose best neighbour is far below the bound would underflow without the fallback."""
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
