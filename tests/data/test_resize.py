"""Thumbnails and square fitting against numpy references (block means, pixel repetition)."""

import numpy as np
import pytest
import torch

from contrastlab.data import fit_square, thumbnails


def images(n, c, h, w, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, c, h, w), dtype=np.uint8))


def test_area_downscale_is_the_block_mean():
    x = images(3, 1, 28, 28)
    ref = x.numpy().astype(np.float64).reshape(3, 1, 14, 2, 14, 2).mean(axis=(3, 5))
    ref = np.round(ref).astype(np.uint8).transpose(0, 2, 3, 1)          # (N, 14, 14, 1)
    got = thumbnails(x, size=14)
    assert got.shape == (3, 14, 14, 1) and got.dtype == torch.uint8
    np.testing.assert_array_equal(got.numpy(), ref)


def test_nearest_upscale_repeats_pixels():
    x = images(2, 3, 8, 8, seed=1)
    ref = x.numpy().repeat(2, axis=2).repeat(2, axis=3).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(thumbnails(x, size=16).numpy(), ref)


def test_same_size_is_a_transpose_and_non_square_is_centre_cropped():
    x = images(2, 3, 28, 28, seed=2)
    np.testing.assert_array_equal(thumbnails(x).numpy(), x.numpy().transpose(0, 2, 3, 1))
    wide = images(1, 1, 10, 30, seed=3)
    np.testing.assert_array_equal(thumbnails(wide, size=10).numpy()[0, :, :, 0], wide.numpy()[0, 0, :, 10:20])


def test_fit_square_keeps_constants_and_shape():
    x = torch.full((2, 3, 9, 13), 123, dtype=torch.uint8)
    out = fit_square(x, 20)
    assert out.shape == (2, 3, 20, 20) and (out == 123).all()


@pytest.mark.parametrize("x, kw, msg", [
    (torch.zeros(2, 3, 8, 8), {}, r"`x_uint8` must be a uint8 tensor of shape \(N, C, H, W\).*torch.float32"),
    (torch.zeros(2, 8, 8, dtype=torch.uint8), {}, r"`x_uint8` must be .*shape \(2, 8, 8\)"),
    (torch.zeros(2, 2, 8, 8, dtype=torch.uint8), {}, r"`x_uint8` must be .*C in \{1, 3\}"),
    (torch.zeros(2, 1, 8, 8, dtype=torch.uint8), {"size": 0}, r"`size` must be a positive int, got 0"),
])
def test_thumbnails_bad_input(x, kw, msg):
    with pytest.raises(ValueError, match=msg):
        thumbnails(x, **kw)
