"""digits: split sizes, stratification and pixels against scikit-learn's own arrays."""

import math

import numpy as np
import torch
from sklearn.datasets import load_digits as sk_digits

from contrastlab.data import load_images


def rows(x, y):
    """Sorted (label, pixels...) rows: a multiset to compare splits without knowing indices."""
    table = np.concatenate([y[:, None], x.reshape(len(x), -1).astype(np.int64)], axis=1)
    return table[np.lexsort(table.T[::-1])]


def test_split_sizes_and_stratification():
    d = load_images("digits")
    sk = sk_digits()
    assert d.x.shape == (1348, 1, 8, 8) and d.x_test.shape == (449, 1, 8, 8)
    assert len(d.x) + len(d.x_test) == len(sk.target) == 1797 and round(1797 * 0.25) == 449
    counts = np.bincount(sk.target)
    for c, n_test in enumerate(np.bincount(d.y_test.numpy(), minlength=10)):
        assert math.floor(counts[c] * 0.25) <= n_test <= math.ceil(counts[c] * 0.25)
    assert d.classes == tuple("0123456789") and d.num_classes == 10 and d.group is None
    assert "25%" in d.notes[0] and "seed 0" in d.notes[0]


def test_pixels_are_sklearn_scaled_and_split_covers_everything():
    d = load_images("digits")
    sk = sk_digits()
    ref = np.rint(sk.images * 255 / 16).astype(np.uint8)                 # 0..16 -> 0..255
    assert ref.max() == 255 and d.x.dtype == torch.uint8
    ours = rows(np.concatenate([d.x.numpy(), d.x_test.numpy()])[:, 0], np.concatenate([d.y, d.y_test]))
    np.testing.assert_array_equal(ours, rows(ref, sk.target))


def test_split_is_fixed():
    a, b = load_images("digits"), load_images("digits")
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y, b.y)
