"""Linear probe: separable data, scikit-learn's LogisticRegression on the same objective, moments."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from contrastlab.eval import LinearProbe, feature_moments, fit_linear_probe, linear_probe

from .conftest import DEVICES, assert_unchanged, clone_all


def test_separable_problem_is_solved():
    g = torch.Generator().manual_seed(0)
    centers = 10 * torch.randn(10, 16, generator=g)
    y = torch.arange(300) % 10
    x = centers[y] + torch.randn(300, 16, generator=g)
    out = linear_probe(x[:200], y[:200], x[200:], y[200:], epochs=30)
    assert out == {"top1": 1.0, "train_top1": 1.0}


def objective(xs, y, weight, bias, wd):
    """mean cross-entropy + wd / 2 |W|^2 in float64 numpy: the function both solvers minimise."""
    z = xs @ np.asarray(weight, np.float64).T + np.asarray(bias, np.float64)
    z = z - z.max(1, keepdims=True)
    ce = np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]
    return ce.mean() + 0.5 * wd * (np.asarray(weight, np.float64) ** 2).sum()


@pytest.fixture(scope="module")
def sklearn_digits(digit_pixels):
    """scikit-learn's LogisticRegression with C = 1 / (weight_decay * N) on standardised pixels."""
    xtr, ytr, xte, yte = digit_pixels
    scaler = StandardScaler().fit(xtr)
    sk = LogisticRegression(C=1.0 / (1e-4 * len(xtr)), max_iter=1000).fit(scaler.transform(xtr), ytr)
    return scaler, sk


def test_matches_sklearn_logistic_regression_on_digits(digit_pixels, sklearn_digits):
    xtr, ytr, xte, yte = digit_pixels
    scaler, sk = sklearn_digits
    sk_pred = sk.predict(scaler.transform(xte))
    out = linear_probe(torch.from_numpy(xtr).float(), torch.from_numpy(ytr), torch.from_numpy(xte).float(),
                       torch.from_numpy(yte), weight_decay=1e-4)
    assert abs(out["top1"] - float((sk_pred == yte).mean())) <= 0.02
    assert out["train_top1"] >= 0.99


def test_reaches_the_regularised_optimum(digit_pixels, sklearn_digits):
    xtr, ytr, xte, yte = digit_pixels
    scaler, sk = sklearn_digits
    probe = fit_linear_probe(torch.from_numpy(xtr).float(), torch.from_numpy(ytr), weight_decay=1e-4)
    xs = scaler.transform(xtr)
    ours = objective(xs, ytr, probe.weight.numpy(), probe.bias.numpy(), 1e-4)
    theirs = objective(xs, ytr, sk.coef_, sk.intercept_, 1e-4)
    assert ours <= theirs + 1e-5                              # as low as scikit-learn's lbfgs gets
    # the same convex problem: test predictions agree almost everywhere
    assert (probe.predict(torch.from_numpy(xte)).numpy() == sk.predict(scaler.transform(xte))).mean() >= 0.97
    # and the probe's own standardisation is the scaler's
    np.testing.assert_allclose(probe.mean.numpy(), scaler.mean_, atol=1e-6)


def test_feature_moments_match_numpy_and_constant_features_stay_zero():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(1000, 5)).astype(np.float32)
    x[:, 2] = 7.25                                             # a constant feature
    mean, std = feature_moments(torch.from_numpy(x), chunk_rows=64)
    np.testing.assert_allclose(mean.numpy(), x.astype(np.float64).mean(0), rtol=1e-12)
    ref_std = x.astype(np.float64).std(0)
    ref_std[2] = 1.0
    np.testing.assert_allclose(std.numpy(), ref_std, rtol=1e-10)
    probe = fit_linear_probe(torch.from_numpy(x), torch.from_numpy(rng.integers(0, 3, 1000)), epochs=5)
    assert isinstance(probe, LinearProbe)
    assert torch.isfinite(probe.weight).all()


def test_num_classes_includes_classes_seen_only_in_test():
    x = torch.tensor([[0.0], [0.1], [1.0], [1.1]])
    out = linear_probe(x, torch.tensor([0, 0, 1, 1]), x, torch.tensor([0, 0, 1, 2]), epochs=20)
    assert out["top1"] == 0.75 and out["train_top1"] == 1.0
    probe = fit_linear_probe(x, torch.tensor([0, 0, 1, 1]), num_classes=5, epochs=5)
    assert probe.weight.shape == (5, 1)


@pytest.mark.parametrize("device", DEVICES)
def test_inputs_untouched_and_devices(device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g, dtype=torch.float64).to(device)
    y = (torch.arange(40) % 2).to(device)
    before = clone_all(x, y)
    with torch.no_grad():                                      # works under an outer no_grad too
        out = linear_probe(x, y, x, y, epochs=10)
    assert 0.0 <= out["top1"] <= 1.0
    assert_unchanged(before, [x, y])
    probe = fit_linear_probe(x, y, epochs=3)
    assert probe.weight.device == x.device and probe.weight.dtype == torch.float32
    assert probe.predict(x).device == x.device
