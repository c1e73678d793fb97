"""Colour operations against float64 per-pixel references (colorsys for hue and HSV)."""

import colorsys
import itertools

import pytest
import torch

from contrastlab.views import (GRAY_WEIGHTS, adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation,
                               color_jitter, rgb_to_grayscale, to_float)

W = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)


def images(b=6, c=3, h=5, w=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, h, w, generator=g, dtype=torch.float64)
    if c == 3:   # edge cases: gray, saturated primaries and secondaries, black, white, max ties
        x[0, :, 0, :7] = torch.tensor([[0.5, 0.5, 0.5], [1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 0], [1, 1, 1],
                                       [0.2, 0.7, 0.7]], dtype=torch.float64).T
    return x


def per_pixel(x, fn):
    """Apply ``fn(rgb tuple) -> rgb tuple`` to each pixel in float64 Python."""
    out = torch.empty_like(x)
    for i, p, q in itertools.product(range(x.shape[0]), range(x.shape[2]), range(x.shape[3])):
        out[i, :, p, q] = torch.tensor(fn(i, tuple(x[i, :, p, q].tolist())), dtype=torch.float64)
    return out


def clip(v):
    return min(1.0, max(0.0, v))


def ref_gray(rgb):
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def test_to_float():
    u = torch.tensor([0, 1, 128, 255], dtype=torch.uint8).view(1, 1, 2, 2)
    assert to_float(u).dtype == torch.float32
    torch.testing.assert_close(to_float(u).double(), u.double() / 255, rtol=0, atol=1e-7)
    f = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    assert to_float(f).dtype == torch.float32 and torch.equal(to_float(f), f.float())


def test_grayscale_weights():
    x = images()
    y = rgb_to_grayscale(x.float())
    assert y.shape == (6, 1, 5, 7) and GRAY_WEIGHTS == (0.299, 0.587, 0.114)
    torch.testing.assert_close(y.double(), torch.einsum("bchw,c->bhw", x, W)[:, None], atol=1e-6, rtol=0)
    gray1 = torch.rand(2, 1, 3, 3)
    assert torch.equal(rgb_to_grayscale(gray1), gray1)


def test_brightness():
    x = images()
    f = torch.tensor([0.0, 0.3, 0.6, 1.0, 1.4, 3.0], dtype=torch.float64)
    ref = per_pixel(x, lambda i, rgb: [clip(f[i].item() * v) for v in rgb])
    torch.testing.assert_close(adjust_brightness(x.float(), f.float()).double(), ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("c", [1, 3])
def test_contrast(c):
    x = images(c=c)
    f = torch.tensor([0.0, 0.3, 0.6, 1.0, 1.4, 3.0], dtype=torch.float64)
    gray = x[:, 0] if c == 1 else torch.einsum("bchw,c->bhw", x, W)
    mean = [float(gray[i].mean()) for i in range(6)]    # mean gray level of the whole image
    ref = per_pixel(x, lambda i, rgb: [clip(mean[i] + f[i].item() * (v - mean[i])) for v in rgb])
    torch.testing.assert_close(adjust_contrast(x.float(), f.float()).double(), ref, atol=1e-6, rtol=0)


def test_saturation():
    x = images()
    f = torch.tensor([0.0, 0.3, 0.6, 1.0, 1.4, 3.0], dtype=torch.float64)
    ref = per_pixel(x, lambda i, rgb: [clip(ref_gray(rgb) + f[i].item() * (v - ref_gray(rgb))) for v in rgb])
    torch.testing.assert_close(adjust_saturation(x.float(), f.float()).double(), ref, atol=1e-6, rtol=0)
    assert torch.equal(adjust_saturation(x.float(), 1.0), x.float())


def test_hue_matches_colorsys():
    x = images(b=8)
    f = torch.tensor([0.0, 0.1, -0.1, 0.25, -0.37, 0.5, -0.5, 1 / 3], dtype=torch.float64)

    def shift(i, rgb):
        h, s, v = colorsys.rgb_to_hsv(*rgb)
        return colorsys.hsv_to_rgb((h + f[i].item()) % 1.0, s, v)

    torch.testing.assert_close(adjust_hue(x.float(), f.float()).double(), per_pixel(x, shift), atol=2e-6, rtol=0)


def test_hue_keeps_value_and_saturation():
    x = images(b=4, h=8, w=8)
    y = adjust_hue(x, torch.tensor([0.1, 0.2, -0.3, 0.45], dtype=torch.float64))
    torch.testing.assert_close(y.amax(1), x.amax(1))
    torch.testing.assert_close(y.amin(1), x.amin(1))


def test_rgb_only_ops_refuse_gray():
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"`adjust_saturation` needs RGB input \(C=3\), got C=1"):
        adjust_saturation(x, 0.5)
    with pytest.raises(ValueError, match=r"`adjust_hue` needs RGB input \(C=3\), got C=1"):
        adjust_hue(x, 0.1)
    with pytest.raises(ValueError, match=r"`factor` must be in \[-0.5, 0.5\] turns, got values up to 0.7"):
        adjust_hue(torch.rand(2, 3, 4, 4), 0.7)
    with pytest.raises(ValueError, match=r"`factor` must be a number or a tensor of shape \(B,\) = \(2,\), got shape \(3,\)"):
        adjust_brightness(x, torch.ones(3))


def test_jitter_random_order_matches_sequential_reference():
    """Each sample gets its own op order; compare with the four single ops applied in that order (float64)."""
    x = images(b=6, h=4, w=7)
    g = torch.Generator().manual_seed(3)
    b, c, s = (0.5 + torch.rand(6, generator=g, dtype=torch.float64) for _ in range(3))
    h = torch.rand(6, generator=g, dtype=torch.float64) * 0.4 - 0.2
    order = torch.stack([torch.randperm(4, generator=g) for _ in range(6)])
    order[1] = torch.tensor([3, 2, 1, 0])
    ops = [lambda y, i: adjust_brightness(y, b[i].item()), lambda y, i: adjust_contrast(y, c[i].item()),
           lambda y, i: adjust_saturation(y, s[i].item()), lambda y, i: adjust_hue(y, h[i].item())]
    ref = torch.cat([x[i:i + 1] for i in range(6)])
    for i in range(6):
        y = x[i:i + 1]
        for op in order[i].tolist():
            y = ops[op](y, i)
        ref[i] = y[0]
    out = color_jitter(x.float(), brightness=b, contrast=c, saturation=s, hue=h, order=order)
    torch.testing.assert_close(out.double(), ref, atol=2e-6, rtol=0)
    # a different order gives a different result (the ops do not commute)
    flipped = color_jitter(x.float(), brightness=b, contrast=c, saturation=s, hue=h, order=order.flip(1))
    assert not torch.allclose(out, flipped, atol=1e-3)


def test_jitter_neutral_factors_are_exact_identity():
    x = torch.rand(5, 3, 6, 6)
    ones = torch.ones(5)
    order = torch.stack([torch.randperm(4) for _ in range(5)])
    out = color_jitter(x, brightness=ones, contrast=ones, saturation=ones, hue=torch.zeros(5), order=order)
    assert torch.equal(out, x)
