"""Weighted kNN against a float64 numpy brute force and scikit-learn's 1-NN; deterministic ties."""

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from contrastlab.eval import knn_predict, knn_top1

from .conftest import DEVICES, assert_unchanged, clone_all


def reference_knn(train, train_labels, test, *, k, temperature, num_classes):
    """Brute force in float64: stable sort of similarities (ties in training order), class sums."""
    tr = train / np.linalg.norm(train, axis=1, keepdims=True)
    te = test / np.linalg.norm(test, axis=1, keepdims=True)
    preds = []
    for q in te:
        s = tr @ q
        nn_idx = np.argsort(-s, kind="stable")[:k]
        votes = np.zeros(num_classes)
        np.add.at(votes, train_labels[nn_idx], np.exp(s[nn_idx] / temperature))
        preds.append(int(np.argmax(votes)))
    return np.array(preds)


@pytest.mark.parametrize("k,temperature,chunk", [(1, 0.1, 7), (5, 0.1, 1024), (20, 0.05, 13), (200, 0.5, 64)])
def test_matches_float64_brute_force(k, temperature, chunk):
    rng = np.random.default_rng(k)
    centers = rng.normal(size=(4, 16))
    ytr, yte = rng.integers(0, 4, 150), rng.integers(0, 4, 60)
    tr = centers[ytr] + 1.5 * rng.normal(size=(150, 16))
    te = centers[yte] + 1.5 * rng.normal(size=(60, 16))
    ref = reference_knn(tr, ytr, te, k=min(k, 150), temperature=temperature, num_classes=4)
    got = knn_predict(torch.from_numpy(tr), torch.from_numpy(ytr), torch.from_numpy(te), k=k,
                      temperature=temperature, chunk_size=chunk)
    assert got.dtype == torch.int64 and got.shape == (60,)
    np.testing.assert_array_equal(got.numpy(), ref)
    # float32 inputs agree too on data without near-ties
    got32 = knn_predict(torch.from_numpy(tr).float(), torch.from_numpy(ytr), torch.from_numpy(te).float(), k=k,
                        temperature=temperature, chunk_size=chunk)
    assert (got32.numpy() == ref).mean() >= 0.98


def test_one_nn_matches_sklearn():
    rng = np.random.default_rng(0)
    tr, te = rng.normal(size=(300, 10)), rng.normal(size=(100, 10))
    ytr = rng.integers(0, 7, 300)
    sk = KNeighborsClassifier(n_neighbors=1, metric="cosine", algorithm="brute").fit(tr, ytr).predict(te)
    got = knn_predict(torch.from_numpy(tr).float(), torch.from_numpy(ytr), torch.from_numpy(te).float(), k=1)
    np.testing.assert_array_equal(got.numpy(), sk)


def test_ties_in_similarity_take_training_order():
    base = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    train = base[[0, 0, 0, 0, 0, 1]]                          # five identical rows, then another
    labels = torch.tensor([3, 1, 2, 0, 4, 0])
    q = torch.tensor([[1.0, 0.0]])
    assert knn_predict(train, labels, q, k=1).tolist() == [3]                 # first of the tied rows
    # k = 2 takes rows 0 and 1 (labels 3 and 1, equal weight): the class tie goes to the smaller id
    assert knn_predict(train, labels, q, k=2).tolist() == [1]
    assert knn_predict(train, labels, q, k=3).tolist() == [1]                 # 3, 1, 2 tied: smallest is 1
    assert knn_predict(train, labels, q, k=4).tolist() == [0]


def test_ties_match_stable_reference_on_duplicated_rows():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(5, 6))
    train = base[rng.integers(0, 5, 80)]                      # many exact similarity ties
    ytr = rng.integers(0, 4, 80)
    test = rng.normal(size=(40, 6))
    for k in (1, 3, 7, 20, 33):
        ref = reference_knn(train, ytr, test, k=k, temperature=0.1, num_classes=4)
        got = knn_predict(torch.from_numpy(train), torch.from_numpy(ytr), torch.from_numpy(test), k=k, chunk_size=9)
        np.testing.assert_array_equal(got.numpy(), ref)
        got32 = knn_predict(torch.from_numpy(train).float(), torch.from_numpy(ytr), torch.from_numpy(test).float(), k=k)
        np.testing.assert_array_equal(got32.numpy(), ref)


def test_collapsed_features_vote_with_the_first_k_rows():
    train = torch.ones(30, 4)                                 # a collapsed encoder: every row the same
    labels = torch.tensor([2, 2, 1, 0, 0, 0] + [1] * 24)
    q = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    assert knn_predict(train, labels, q, k=3).tolist() == [2] * 5             # rows 0-2: labels 2, 2, 1
    assert knn_predict(train, labels, q, k=6).tolist() == [0] * 5             # 2, 2, 1, 0, 0, 0


def test_chunking_and_k_above_n_do_not_change_predictions():
    g = torch.Generator().manual_seed(0)
    tr, te = torch.randn(50, 8, generator=g), torch.randn(33, 8, generator=g)
    y = torch.randint(0, 3, (50,), generator=g)
    full = knn_predict(tr, y, te, k=50, chunk_size=1000)
    assert torch.equal(knn_predict(tr, y, te, k=50, chunk_size=1), full)
    assert torch.equal(knn_predict(tr, y, te, k=500, chunk_size=4), full)     # k capped at N


def test_tiny_temperature_does_not_overflow():
    tr = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.8, 0.6]])
    q = torch.tensor([[1.0, 0.0]])
    # exp(1 / 1e-4) overflows float32; the vote must still be the nearest row's class
    assert knn_predict(tr, torch.tensor([0, 1, 1]), q, k=3, temperature=1e-4).tolist() == [0]


def test_num_classes_and_top1():
    tr = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1])
    te = torch.tensor([[1.0, 0.1], [0.1, 1.0], [0.2, 1.0], [1.0, 0.0]])
    yte = torch.tensor([0, 1, 5, 1])                                          # class 5 never trained
    assert knn_top1(tr, y, te, yte, k=1) == 0.5
    assert knn_predict(tr, y, te, k=1, num_classes=9).tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize("device", DEVICES)
def test_inputs_untouched_and_device_kept(device):
    g = torch.Generator().manual_seed(1)
    tr, te = torch.randn(20, 4, generator=g).to(device), torch.randn(6, 4, generator=g).to(device)
    y = (torch.arange(20) % 3).to(device)
    before = clone_all(tr, y, te)
    pred = knn_predict(tr, y, te, k=5)
    assert pred.device == te.device
    assert_unchanged(before, [tr, y, te])
