"""Hold-out splits and the probe subset: determinism and stratification against floor/ceil bounds."""

import math

import numpy as np
import pytest
import torch

from contrastlab.data import ImageData, load_images, probe_subset
from contrastlab.data.split import group_holdout, stratified_holdout


def within_quota(picked_labels, all_labels, fraction):
    counts = np.bincount(all_labels)
    got = np.bincount(picked_labels, minlength=len(counts))
    return all(math.floor(c * fraction) <= g <= math.ceil(c * fraction) for c, g in zip(counts, got))


@pytest.mark.parametrize("sizes", [[6, 12], [1, 5, 17, 40], [100, 3, 3, 3]])
def test_stratified_holdout(sizes):
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(len(sizes)), sizes))
    train, test = stratified_holdout(labels, fraction=1 / 6, seed=0)
    n = len(labels)
    assert len(test) == round(n / 6)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(n))
    assert list(test) == sorted(test) and list(train) == sorted(train)
    assert within_quota(labels[test], labels, 1 / 6)
    assert set(labels[train]) == set(labels)                            # every class keeps a train image
    again, _ = stratified_holdout(labels, fraction=1 / 6, seed=0)
    assert np.array_equal(train, again)


def test_group_holdout_keeps_groups_whole():
    groups = np.repeat(np.arange(20), np.arange(1, 21))
    train, test = group_holdout(groups, fraction=0.2, seed=0)
    assert set(groups[train]).isdisjoint(groups[test]) and len(train) and len(test)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(groups)))
    assert group_holdout(np.zeros(5, int), fraction=0.5)[1].size == 0   # one group: nothing to hold out


def test_probe_subset_stratified_and_fixed():
    d = load_images("digits")
    idx = probe_subset(d, size=200, seed=3)
    assert idx.dtype == torch.int64 and idx.shape == (200,) and len(set(idx.tolist())) == 200
    assert idx.max() < len(d.x_test) and idx.tolist() == sorted(idx.tolist())
    assert within_quota(d.y_test[idx].numpy(), d.y_test.numpy(), 200 / len(d.y_test))
    assert torch.equal(idx, probe_subset(d, size=200, seed=3))
    assert not torch.equal(idx, probe_subset(d, size=200, seed=4))


def test_probe_subset_without_test_or_labels():
    x = torch.zeros(50, 1, 2, 2, dtype=torch.uint8)
    d = ImageData("u", x, None, None, None, None)
    idx = probe_subset(d, size=10)
    assert idx.shape == (10,) and idx.max() < 50 and len(set(idx.tolist())) == 10
    assert torch.equal(idx, probe_subset(d, size=10))
    assert torch.equal(probe_subset(d, size=500), torch.arange(50))
    labelled = ImageData("l", x, torch.arange(50) % 5, None, None, None)
    got = probe_subset(labelled, size=10)
    assert labelled.y[got].bincount().tolist() == [2] * 5


@pytest.mark.parametrize("kw, msg", [(dict(size=0), r"`size` must be a positive int, got 0"),
                                     (dict(size=2.5), r"`size` must be a positive int, got 2.5"),
                                     (dict(seed=-1), r"`seed` must be a non-negative int, got -1")])
def test_probe_subset_bad_arguments(kw, msg):
    d = ImageData("u", torch.zeros(5, 1, 2, 2, dtype=torch.uint8), None, None, None, None)
    with pytest.raises(ValueError, match=msg):
        probe_subset(d, **kw)
