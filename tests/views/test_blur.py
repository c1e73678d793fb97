"""Gaussian blur against a float64 reference convolution (numpy loops over taps; scipy.ndimage when installed)."""

import math

import numpy as np
import pytest
import torch

from contrastlab.views import blur_kernel_size, gaussian_blur, gaussian_kernels


def taps_for(sigma, k):
    r = k // 2
    taps = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma ** 2))
    return taps / taps.sum()


def ref_blur(img, sigma, k):
    """float64 (C, H, W): full 2-d sum over the k x k outer-product kernel, reflect without edge repeat."""
    r, taps = k // 2, taps_for(sigma, k)
    padded = np.pad(img, ((0, 0), (r, r), (r, r)), mode="reflect")
    h, w = img.shape[1:]
    out = np.zeros_like(img)
    for i in range(k):
        for j in range(k):
            out += taps[i] * taps[j] * padded[:, i:i + h, j:j + w]
    return out


def test_reference_agrees_with_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    img = np.random.default_rng(0).random((2, 9, 11))
    taps = taps_for(1.3, 5)
    ref = ndimage.correlate1d(ndimage.correlate1d(img, taps, axis=-1, mode="mirror"), taps, axis=-2, mode="mirror")
    np.testing.assert_allclose(ref_blur(img, 1.3, 5), ref, atol=1e-12)


@pytest.mark.parametrize("k", [3, 5, 9])
def test_blur_matches_reference(k):
    g = torch.Generator().manual_seed(k)
    x = torch.rand(5, 3, 12, 10, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.1, 0.5, 1.0, 2.0, 3.7], dtype=torch.float64)
    out = gaussian_blur(x.float(), sigma.float(), kernel_size=k).double()
    ref = torch.stack([torch.from_numpy(ref_blur(x[i].numpy(), sigma[i].item(), k)) for i in range(5)])
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


def test_kernels_are_normalised_gaussians():
    taps = gaussian_kernels(torch.tensor([1.0, 2.0], dtype=torch.float64), 5)
    j = torch.arange(-2, 3, dtype=torch.float64)
    for row, s in zip(taps, (1.0, 2.0)):
        ref = torch.exp(-j ** 2 / (2 * s * s))
        torch.testing.assert_close(row, ref / ref.sum())


def test_constant_image_keeps_its_mean():
    x = torch.full((4, 3, 28, 28), 0.37)
    y = gaussian_blur(x, torch.tensor([0.1, 0.7, 1.5, 2.0]))
    torch.testing.assert_close(y.mean(dim=(1, 2, 3)), torch.full((4,), 0.37), atol=1e-6, rtol=0)
    torch.testing.assert_close(y, x, atol=1e-6, rtol=0)


def test_kernel_size_rule_and_identity_kernel():
    assert [blur_kernel_size(s, s) for s in (8, 19, 20, 28, 32, 64, 224)] == [1, 1, 3, 3, 3, 7, 23]
    assert blur_kernel_size(28, 300) == 3
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(gaussian_blur(x, 1.0), x)                    # 8 px: one tap


def test_blur_bad_arguments():
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"`sigma` must be finite and > 0, got \[1.0, 0.0\]"):
        gaussian_blur(x, torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"`kernel_size` must be an odd positive int with radius < min\(H, W\) = 8, got 4"):
        gaussian_blur(x, 1.0, kernel_size=4)
    with pytest.raises(ValueError, match=r"got 17"):
        gaussian_blur(x, math.pi, kernel_size=17)
