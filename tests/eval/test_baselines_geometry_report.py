"""Pixel baselines against scikit-learn / numpy, geometry against float64 formulas, the report table."""

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from contrastlab.eval import format_report, geometry, pixel_baselines

from .test_knn import reference_knn


def test_pixel_baselines_on_digits(digits, digit_pixels):
    xtr, ytr, xte, yte = digits
    out = pixel_baselines(xtr, ytr, xte, yte, k=20)
    assert set(out) == {"pixels_knn_top1", "pixels_linear_top1"}
    ptr, pytr, pte, pyte = digit_pixels
    scaler = StandardScaler().fit(ptr)
    str_, ste = scaler.transform(ptr), scaler.transform(pte)
    knn_ref = float((reference_knn(str_, pytr, ste, k=20, temperature=0.1, num_classes=10) == pyte).mean())
    assert abs(out["pixels_knn_top1"] - knn_ref) <= 0.005     # float32 vs float64 near-ties only
    sk = LogisticRegression(C=1.0 / (1e-4 * len(ptr)), max_iter=1000).fit(str_, pytr)
    assert abs(out["pixels_linear_top1"] - sk.score(ste, pyte)) <= 0.02


def test_geometry_matches_float64_formulas():
    g = torch.Generator().manual_seed(0)
    za = torch.randn(50, 8, generator=g, dtype=torch.float64)
    zb = za + 0.3 * torch.randn(50, 8, generator=g, dtype=torch.float64)
    a = za.numpy() / np.linalg.norm(za.numpy(), axis=1, keepdims=True)
    b = zb.numpy() / np.linalg.norm(zb.numpy(), axis=1, keepdims=True)

    def unif(u):
        d2 = ((u[:, None] - u[None]) ** 2).sum(-1)
        off = ~np.eye(len(u), dtype=bool)
        return np.log(np.exp(-2 * d2[off]).mean())
    out = geometry(za, zb)
    assert out["alignment"] == pytest.approx(((a - b) ** 2).sum(1).mean(), abs=1e-12)
    assert out["uniformity"] == pytest.approx((unif(a) + unif(b)) / 2, abs=1e-12)
    assert geometry(torch.eye(4), torch.eye(4)) == {"alignment": 0.0, "uniformity": -4.0}


FULL = {
    "knn_top1": 0.873, "linear_top1": 0.9012, "pixels_knn_top1": 0.81, "pixels_linear_top1": 0.84,
    "label_fraction": {0.1: {"pretrained": 0.85, "scratch": 0.78}, 0.01: {"pretrained": 0.7, "scratch": 0.45}},
    "alignment": 0.41234, "uniformity": -3.2, "verification": {"roc_auc": 0.95123, "eer": 0.1015},
    "robustness": {"gaussian_noise": {0.08: 0.8, 0.38: 0.5}, "blur": {1.0: 0.75}},
}


def test_report_rows_and_alignment():
    text = format_report(FULL)
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1            # one width: an aligned table
    body = {line.rsplit(None, 1)[0].strip(): line.rsplit(None, 1)[1] for line in lines[2:]}
    assert body == {
        "kNN top-1": "87.3%", "linear probe top-1": "90.1%", "pixels kNN top-1": "81.0%",
        "pixels linear top-1": "84.0%", "1% labels, pretrained": "70.0%", "1% labels, scratch": "45.0%",
        "10% labels, pretrained": "85.0%", "10% labels, scratch": "78.0%", "alignment": "0.4123",
        "uniformity": "-3.2000", "verification ROC AUC": "0.9512", "verification EER": "10.2%",
        "gaussian_noise @ 0.08": "80.0%", "gaussian_noise @ 0.38": "50.0%", "blur @ 1.0": "75.0%",
    }
    assert [line.split("  ")[0].strip() for line in lines[6:10]] == [
        "1% labels, pretrained", "1% labels, scratch", "10% labels, pretrained", "10% labels, scratch"]


def test_report_skips_missing_and_survives_json():
    assert format_report(json.loads(json.dumps(FULL))) == format_report(FULL)   # string keys after JSON
    text = format_report({"knn_top1": 0.5, "linear_top1": None, "verification": {"roc_auc": 0.9}})
    assert "kNN top-1" in text and "linear" not in text and "EER" not in text and "ROC AUC" in text
    assert format_report({}) == "(no evaluation results)"
