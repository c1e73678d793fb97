"""Augment and make_views: shapes, ranges, determinism, identities, rates of the random stages."""

import math

import pytest
import torch

from contrastlab.views import Augment, make_views, preset, to_float

OFF = dict(crop_scale=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)


def batch(b=16, c=3, h=32, w=32, seed=0, dtype=torch.uint8):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (b, c, h, w), generator=g, dtype=torch.uint8)
    return x if dtype == torch.uint8 else x.to(dtype) / 255


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def binomial_ok(k, n, p, z=4.5):
    return abs(k - n * p) <= z * math.sqrt(n * p * (1 - p)) + 1


@pytest.mark.parametrize("c,h,w", [(3, 32, 32), (1, 28, 28), (3, 20, 36), (1, 8, 8)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_shape_dtype_range(c, h, w, dtype):
    x = batch(12, c, h, w, dtype=dtype)
    y = Augment()(x, generator=seeded(0))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0 and bool(torch.isfinite(y).all())


@pytest.mark.parametrize("size,expect", [(16, (16, 16)), ((20, 12), (20, 12)), (48, (48, 48))])
def test_output_size(size, expect):
    y = Augment(size=size)(batch(4), generator=seeded(0))
    assert y.shape == (4, 3, *expect)


def test_same_seed_bit_identical_different_seed_differs():
    x = batch(32)
    aug = preset("simclr")
    a, b = aug(x, generator=seeded(7)), aug(x, generator=seeded(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, aug(x, generator=seeded(8)))
    torch.manual_seed(5)
    c = aug(x)
    torch.manual_seed(5)
    assert torch.equal(c, aug(x))                     # the global generator when none is given


def test_does_not_modify_or_alias_its_input():
    x = batch(8, dtype=torch.float32)
    before = x.clone()
    for aug in (Augment(), Augment(**OFF)):
        y = aug(x, generator=seeded(0))
        y.add_(1.0)
        assert torch.equal(x, before)


def test_all_stages_off_is_exact_identity():
    for c, h, w in [(3, 32, 32), (1, 28, 20)]:
        x = batch(8, c, h, w)
        assert torch.equal(Augment(**OFF)(x, generator=seeded(0)), to_float(x))


def test_crop_scale_one_ratio_one_no_flip_is_identity():
    x = batch(8, 1, 28, 28)
    aug = Augment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
    torch.testing.assert_close(aug(x, generator=seeded(0)), to_float(x), atol=1e-6, rtol=0)


def test_flip_p_one_is_exact_mirror():
    x = batch(8, 3, 24, 30)
    y = Augment(**{**OFF, "flip_p": 1.0})(x, generator=seeded(0))
    assert torch.equal(y, to_float(x).flip(-1))


def test_flip_rate():
    n, p = 1500, 0.3
    x = batch(n, 1, 6, 6)
    y = Augment(**{**OFF, "flip_p": p})(x, generator=seeded(1))
    xf = to_float(x)
    flipped = (y == xf.flip(-1)).flatten(1).all(1)
    kept = (y == xf).flatten(1).all(1)
    assert bool((flipped | kept).all())
    assert binomial_ok(int(flipped.sum()), n, p)


def test_grayscale_rate_and_equal_channels():
    n, p = 1500, 0.2
    x = batch(n, 3, 6, 6)
    y = Augment(**{**OFF, "grayscale_p": p})(x, generator=seeded(2))
    xf = to_float(x).double()
    gray = (y[:, 0] == y[:, 1]).flatten(1).all(1) & (y[:, 1] == y[:, 2]).flatten(1).all(1)
    assert binomial_ok(int(gray.sum()), n, p)
    luma = torch.einsum("bchw,c->bhw", xf, torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64))
    torch.testing.assert_close(y[gray, 0].double(), luma[gray], atol=1e-6, rtol=0)
    assert torch.equal(y[~gray], xf[~gray].float())


def test_jitter_and_blur_rates():
    n = 1500
    x = batch(n, 3, 20, 20)
    xf = to_float(x)
    y = Augment(**{**OFF, "jitter_p": 0.6})(x, generator=seeded(3))
    changed = ~(y == xf).flatten(1).all(1)
    assert binomial_ok(int(changed.sum()), n, 0.6)
    y = Augment(**{**OFF, "blur_p": 0.4})(x, generator=seeded(4))
    changed = ~(y == xf).flatten(1).all(1)
    assert binomial_ok(int(changed.sum()), n, 0.4)


def test_gray_input_skips_rgb_only_ops():
    """On 1-channel input, saturation, hue and grayscale are skipped: same draws, same output as with them off."""
    x = batch(16, 1, 28, 28)
    full = Augment()(x, generator=seeded(9))
    without = Augment(saturation=0.0, hue=0.0, grayscale_p=0.0)(x, generator=seeded(9))
    assert full.shape == (16, 1, 28, 28)
    assert torch.equal(full, without)
    assert not torch.equal(full, to_float(x))


def test_make_views_shape_and_independence():
    x = batch(6)
    v = make_views(x, preset("simclr"), n_views=3, generator=seeded(0))
    assert v.shape == (6, 3, 3, 32, 32) and v.dtype == torch.float32
    assert not torch.equal(v[:, 0], v[:, 1])
    same = make_views(x, Augment(**OFF), n_views=2)
    assert torch.equal(same[:, 0], to_float(x)) and torch.equal(same[:, 1], to_float(x))
    again = make_views(x, preset("simclr"), n_views=3, generator=seeded(0))
    assert torch.equal(v, again)


def test_make_views_bad_n_views():
    with pytest.raises(ValueError, match="`n_views` must be a positive int, got 0"):
        make_views(batch(2), Augment(), n_views=0)


def test_sample_then_apply_equals_call():
    x = batch(8)
    aug = Augment()
    params = aug.sample(8, 3, 32, 32, generator=seeded(4))
    assert params.boxes.shape == (8, 4) and params.order.shape == (8, 4) and params.factors.shape == (8, 4)
    assert torch.equal(aug.apply(to_float(x), params), aug(x, generator=seeded(4)))
    assert "crop_scale=(0.2, 1.0)" in repr(aug)


def test_jitter_factor_ranges():
    aug = Augment(jitter_p=1.0, brightness=0.4, contrast=1.5, saturation=0.0, hue=0.1)
    f = aug.sample(4000, 3, 8, 8, generator=seeded(5)).factors
    assert f[:, 0].min() >= 0.6 and f[:, 0].max() <= 1.4
    assert f[:, 1].min() >= 0.0 and f[:, 1].max() <= 2.5
    assert f[:, 3].abs().max() <= 0.1 and f[:, 3].min() < -0.09
    order = aug.sample(100, 3, 8, 8, generator=seeded(5)).order
    assert order.shape == (100, 3) and bool((order.sort(1).values == torch.tensor([0, 1, 3])).all())
