"""Corruptions against scipy / float64 formulas; robustness end to end on digits."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from contrastlab.eval import (CORRUPTIONS, DEFAULT_SEVERITIES, contrast, embed, gaussian_blur, gaussian_noise,
                              linear_probe, robustness)

from .conftest import MLP


def rand_images(shape, seed=0, dtype=torch.float32):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("sigma", [0.4, 1.0, 2.3])
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 1, 5, 7)])
def test_blur_matches_scipy(sigma, shape):
    x = rand_images(shape, dtype=torch.float64)
    ref = gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="nearest", truncate=3.0)
    np.testing.assert_allclose(gaussian_blur(x, sigma).numpy(), ref, atol=1e-12)
    np.testing.assert_allclose(gaussian_blur(x.float(), sigma).numpy(), ref, atol=1e-5)


def test_blur_identity_at_small_sigma():
    x = rand_images((2, 1, 4, 4))
    assert torch.equal(gaussian_blur(x, 0.0), x)
    assert torch.equal(gaussian_blur(x, 0.1), x)              # radius int(0.3 + 0.5) = 0, like scipy
    assert gaussian_blur(x, 0.0) is not x


def test_noise_statistics_and_determinism():
    x = torch.full((4, 3, 32, 32), 0.5)
    y = gaussian_noise(x, 0.05, generator=torch.Generator().manual_seed(0))
    d = (y - x).double()
    assert abs(float(d.mean())) < 0.003 and abs(float(d.std()) - 0.05) < 0.002
    assert torch.equal(y, gaussian_noise(x, 0.05, generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(y, gaussian_noise(x, 0.05, generator=torch.Generator().manual_seed(1)))
    big = gaussian_noise(x, 3.0, generator=torch.Generator().manual_seed(0))
    assert float(big.min()) == 0.0 and float(big.max()) == 1.0   # clipped to [0, 1]
    assert torch.equal(x, torch.full((4, 3, 32, 32), 0.5))      # input untouched
    assert torch.equal(gaussian_noise(x, 0.0), x)


def test_contrast_matches_formula():
    x = rand_images((3, 2, 4, 5), dtype=torch.float64)
    before = x.clone()
    for s in (0.0, 0.3, 1.0):
        m = x.numpy().mean(axis=(1, 2, 3), keepdims=True)
        np.testing.assert_allclose(contrast(x, s).numpy(), (1 - s) * x.numpy() + s * m, atol=1e-15)
    assert torch.equal(x, before)


def test_registry_and_defaults():
    assert set(CORRUPTIONS) == set(DEFAULT_SEVERITIES) == {"gaussian_noise", "blur", "contrast"}
    x = rand_images((2, 1, 6, 6))
    for name, fn in CORRUPTIONS.items():
        for sev in DEFAULT_SEVERITIES[name]:
            y = fn(x, sev, generator=torch.Generator().manual_seed(0))
            assert y.shape == x.shape and y.dtype == x.dtype
            assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_robustness_on_digits(digits):
    xtr, ytr, xte, yte = digits
    torch.manual_seed(0)
    enc = MLP(out_dim=48)                                     # a fixed random encoder is enough here
    sev = {"gaussian_noise": [0.0, 0.6], "blur": [0.0, 2.0], "contrast": [0.0, 0.97]}
    out = robustness(enc, xtr, ytr, xte, yte, severities=sev, epochs=50)
    assert list(out) == list(sev) and all(list(out[k]) == sev[k] for k in sev)
    clean = linear_probe(embed(enc, xtr), ytr, embed(enc, xte), yte, epochs=50)["top1"]
    for name in sev:
        assert out[name][0.0] == clean                        # severity 0 is the clean test set
        assert out[name][sev[name][1]] < clean - 0.05         # harsh corruption hurts
    assert robustness(enc, xtr, ytr, xte, yte, severities={"gaussian_noise": [0.6]}, epochs=50) == \
        {"gaussian_noise": {0.6: out["gaussian_noise"][0.6]}}  # each entry reproducible on its own
