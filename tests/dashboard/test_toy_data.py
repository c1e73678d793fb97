"""The playground's data: clusters on the sphere and positives by augmentation (nearest point to a
noisy copy), checked against brute force in numpy."""

import math

import numpy as np
import pytest
import torch

from contrastlab.dashboard.toy_data import HARD_PAIR_GAP, cluster_centres, make_clusters, sample_batch


@pytest.mark.parametrize("dim", [2, 3])
def test_clusters_are_unit_vectors_with_balanced_labels(dim):
    x, labels = make_clusters(points=120, clusters=4, dim=dim, generator=torch.Generator().manual_seed(0))
    assert x.shape == (120, dim) and labels.shape == (120,)
    np.testing.assert_allclose(np.linalg.norm(x.numpy(), axis=1), 1.0, atol=1e-6)
    assert np.bincount(labels.numpy()).tolist() == [30, 30, 30, 30]
    # each point is closer to its own cluster centre than to any other
    c = cluster_centres(4, dim).numpy()
    nearest = np.argmax(x.numpy() @ c.T, axis=1)
    assert (nearest == labels.numpy()).mean() > 0.95


@pytest.mark.parametrize("dim", [2, 3])
def test_hard_pair_puts_two_centres_at_the_gap(dim):
    c = cluster_centres(5, dim, hard_pair=True).numpy()
    assert math.isclose(math.acos(np.clip(c[0] @ c[1], -1, 1)), HARD_PAIR_GAP, rel_tol=1e-6)
    others = [math.acos(np.clip(c[i] @ c[j], -1, 1)) for i in range(5) for j in range(i + 1, 5) if (i, j) != (0, 1)]
    assert min(others) > HARD_PAIR_GAP


def test_without_noise_the_positive_is_the_nearest_other_point():
    x, _ = make_clusters(points=50, clusters=3, dim=3, generator=torch.Generator().manual_seed(1))
    xn = x.numpy().astype(np.float64)
    for seed in range(5):
        a, p = sample_batch(x, batch_size=1, noise=0.0, generator=torch.Generator().manual_seed(seed))
        d = np.linalg.norm(xn - xn[int(a)], axis=1)
        d[int(a)] = np.inf
        assert int(p) == int(np.argmin(d))


def test_batches_are_distinct_points_and_contain_the_anchor():
    x, _ = make_clusters(points=64, clusters=4, dim=2, generator=torch.Generator().manual_seed(0))
    for seed in range(10):
        a, p = sample_batch(x, batch_size=32, noise=0.3, generator=torch.Generator().manual_seed(seed), include=7)
        both = torch.cat([a, p]).tolist()
        assert len(set(both)) == 64 and 7 in a.tolist()
    with pytest.raises(ValueError, match="`batch_size` must be at most points / 2 = 32, got 33"):
        sample_batch(x, batch_size=33, noise=0.1, generator=torch.Generator())


def test_more_noise_reaches_farther_positives():
    x, _ = make_clusters(points=400, clusters=4, dim=2, generator=torch.Generator().manual_seed(0))

    def mean_angle(noise):
        a, p = sample_batch(x, batch_size=150, noise=noise, generator=torch.Generator().manual_seed(3))
        cos = (x[a] * x[p]).sum(1).clamp(-1, 1).double()
        return float(torch.acos(cos).mean())

    assert mean_angle(0.0) < mean_angle(0.3) < mean_angle(1.0)
