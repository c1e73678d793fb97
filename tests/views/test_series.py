"""Series views: shapes, determinism by seed, the crops' overlap, each stage against its definition, bad input."""
import pytest
import torch

from contrastlab.views.series import (SERIES_PRESETS, SeriesAugment, make_series_views, overlapping_crops,
                                      series_preset, take_segments)


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_crops_overlap_on_the_same_time_steps():
    t = 60
    x = torch.arange(t, dtype=torch.float32).repeat(5, 2, 1) + 1000 * torch.arange(5).view(5, 1, 1)  # (5, 2, 60)
    for seed in range(30):
        a, b, n = overlapping_crops(x, generator=_g(seed))
        assert a.shape[:2] == b.shape[:2] == (5, 2) and 2 <= n <= t
        assert torch.equal(a[..., -n:], b[..., :n])                    # the overlap: a's end, b's start
        steps = a[:, 0] - 1000 * torch.arange(5).view(5, 1)            # each row a contiguous run of its own steps
        assert torch.equal(steps.diff(dim=1), torch.ones_like(steps[:, 1:]))
        assert steps.min() >= 0 and (b[:, 0] - 1000 * torch.arange(5).view(5, 1)).max() < t


def test_crops_are_deterministic_by_seed():
    x = torch.randn(4, 1, 40)
    a1, b1, n1 = overlapping_crops(x, generator=_g(3))
    a2, b2, n2 = overlapping_crops(x, generator=_g(3))
    assert n1 == n2 and torch.equal(a1, a2) and torch.equal(b1, b2)
    assert any(overlapping_crops(x, generator=_g(s))[2] != n1 for s in range(4, 12))


def test_take_segments():
    x = torch.arange(10.0).repeat(2, 1, 1)
    assert take_segments(x, torch.tensor([0, 5]), 3)[:, 0].tolist() == [[0, 1, 2], [5, 6, 7]]


@pytest.mark.parametrize("name", sorted(SERIES_PRESETS))
def test_presets_keep_the_shape_and_are_deterministic(name):
    x = torch.randn(6, 3, 33)
    aug = series_preset(name)
    out = aug(x, generator=_g(1))
    assert out.shape == x.shape and out.dtype == torch.float32
    assert torch.equal(out, aug(x, generator=_g(1)))
    v = make_series_views(x, aug, n_views=2, generator=_g(2))
    assert v.shape == (6, 2, 3, 33)


def test_all_off_is_the_identity_and_stages_match_their_definition():
    x = torch.randn(8, 2, 50, dtype=torch.float64)
    assert torch.equal(SeriesAugment()(x, generator=_g()), x.float())
    scaled = SeriesAugment(scaling=0.5)(x, generator=_g())
    ratio = scaled.double() / x                                          # one factor per series and channel
    assert torch.allclose(ratio, ratio[..., :1].expand_as(ratio), rtol=1e-5)
    jit = SeriesAugment(jitter=0.1)(torch.zeros(64, 1, 100), generator=_g())
    assert abs(float(jit.std()) - 0.1) < 0.005
    masked = SeriesAugment(mask_p=0.5)(torch.ones(64, 2, 100), generator=_g())
    assert torch.equal(masked[:, 0], masked[:, 1]) and abs(float((masked == 0).double().mean()) - 0.5) < 0.02
    warped = SeriesAugment(time_warp=0.3)(x, generator=_g())
    assert torch.allclose(warped[..., 0], x[..., 0].float()) and torch.allclose(warped[..., -1], x[..., -1].float())
    ramp = torch.linspace(0, 1, 50).repeat(8, 1, 1)                      # a warped ramp stays increasing
    assert (SeriesAugment(time_warp=0.3)(ramp, generator=_g()).diff(dim=2) >= -1e-6).all()
    mag = SeriesAugment(magnitude_warp=0.2)(torch.ones(8, 1, 50), generator=_g())
    assert (mag.diff(dim=2).abs() < 0.2).all() and not torch.allclose(mag, torch.ones_like(mag))


@pytest.mark.parametrize("kw, message", [
    (dict(jitter=-1.0), "`jitter` must be >= 0, got -1.0"),
    (dict(mask_p=1.0), "`mask_p` must be < 1"),
    (dict(mask_p=2.0), r"`mask_p` must be a probability in \[0, 1\], got 2.0"),
    (dict(knots=0), "`knots` must be a positive int, got 0"),
])
def test_bad_hyperparameters(kw, message):
    with pytest.raises(ValueError, match=message):
        SeriesAugment(**kw)


def test_bad_input():
    with pytest.raises(ValueError, match=r"`x` must have shape \(B, C, T\), got a 2-d"):
        SeriesAugment()(torch.zeros(3, 4))
    with pytest.raises(TypeError, match="`x` must be floating point"):
        overlapping_crops(torch.zeros(3, 1, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="`augment` must be one of .* for series, got 'simclr'"):
        series_preset("simclr")
