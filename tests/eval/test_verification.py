"""ROC AUC and EER against scikit-learn (random and tied scores); pair sampling; verification."""

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from sklearn.metrics import roc_auc_score, roc_curve

from contrastlab.eval import equal_error_rate, roc_auc, sample_pairs, verification


def reference_eer(scores, targets):
    """Where 1 - TPR = FPR on scikit-learn's ROC curve, linearly interpolated (the usual brentq recipe)."""
    fpr, tpr, _ = roc_curve(targets, scores)
    return brentq(lambda x: 1.0 - x - np.interp(x, fpr, tpr), 0.0, 1.0, xtol=1e-14)


def score_sets():
    rng = np.random.default_rng(0)
    out = []
    for n, pos_rate, decimals in [(200, 0.5, None), (501, 0.3, None), (300, 0.5, 1), (400, 0.2, 0), (50, 0.5, 2)]:
        t = rng.random(n) < pos_rate
        s = rng.normal(size=n) + 1.0 * t
        if decimals is not None:
            s = np.round(s, decimals)                       # heavy ties
        out.append((s, t))
    return out


@pytest.mark.parametrize("scores,targets", score_sets())
def test_roc_auc_matches_sklearn(scores, targets):
    got = roc_auc(torch.from_numpy(scores), torch.from_numpy(targets))
    assert got == pytest.approx(roc_auc_score(targets, scores), abs=1e-12)
    got32 = roc_auc(torch.from_numpy(scores).float(), torch.from_numpy(targets.astype(np.int64)))
    assert got32 == pytest.approx(roc_auc_score(targets, scores.astype(np.float32)), abs=1e-12)


@pytest.mark.parametrize("scores,targets", score_sets())
def test_eer_matches_sklearn_roc_curve(scores, targets):
    got = equal_error_rate(torch.from_numpy(scores), torch.from_numpy(targets))
    assert got == pytest.approx(reference_eer(scores, targets), abs=1e-9)


def test_analytic_values():
    t = torch.tensor([0, 0, 1, 1])
    assert roc_auc(torch.tensor([0.1, 0.2, 0.8, 0.9]), t) == 1.0
    assert equal_error_rate(torch.tensor([0.1, 0.2, 0.8, 0.9]), t) == 0.0
    assert roc_auc(torch.tensor([0.9, 0.8, 0.2, 0.1]), t) == 0.0
    assert equal_error_rate(torch.tensor([0.9, 0.8, 0.2, 0.1]), t) == 1.0
    assert roc_auc(torch.full((4,), 0.3), t) == 0.5                # all tied: a coin flip
    assert equal_error_rate(torch.full((4,), 0.3), t) == 0.5


def test_sample_pairs_are_balanced_and_correct():
    labels = torch.tensor([5, 5, 5, 2, 2, 9, 7, 7, 7, 7, 3])     # label 3 and 9 occur once
    a, b, same = sample_pairs(labels, pairs=2001, seed=1)
    assert len(a) == len(b) == len(same) == 2001
    assert int(same.sum()) == 1000
    assert bool((a != b).all())
    assert torch.equal(labels[a] == labels[b], same)
    assert not bool(torch.isin(a[same], torch.tensor([5, 10])).any())   # singletons cannot anchor same pairs
    # same-label anchors are uniform over the eligible rows (9 of them): each about 1000 / 9 times
    counts = torch.bincount(a[same], minlength=11)[[0, 1, 2, 3, 4, 6, 7, 8, 9]]
    assert int(counts.min()) > 70 and int(counts.max()) < 160
    a2, b2, same2 = sample_pairs(labels, pairs=2001, seed=1)
    assert torch.equal(a, a2) and torch.equal(b, b2)


def test_verification_scores_cosine_pairs_like_sklearn():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 6, (300,), generator=g)
    feats = torch.randn(6, 8, generator=g)[labels] + 1.5 * torch.randn(300, 8, generator=g)
    out = verification(feats, labels, pairs=3000, seed=4)
    a, b, same = sample_pairs(labels, pairs=3000, seed=4)
    f = feats.double().numpy()
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    cos = (f[a.numpy()] * f[b.numpy()]).sum(1)
    assert out["pairs"] == 3000
    assert out["roc_auc"] == pytest.approx(roc_auc_score(same.numpy(), cos), abs=1e-9)
    assert out["eer"] == pytest.approx(reference_eer(cos, same.numpy()), abs=1e-9)
    assert 0.6 < out["roc_auc"] < 1.0


def test_verification_extremes():
    labels = torch.arange(40) % 4
    separated = torch.eye(4)[labels]
    assert verification(separated, labels, pairs=400) == {"roc_auc": 1.0, "eer": 0.0, "pairs": 400}
    noise = torch.randn(40, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = verification(noise, labels, pairs=10000)
    assert abs(out["roc_auc"] - 0.5) < 0.05 and abs(out["eer"] - 0.5) < 0.05
