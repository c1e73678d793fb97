"""Shared fixtures for contrastlab.eval: scikit-learn's digits as uint8 images, tiny encoders."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


class MLP(torch.nn.Module):
    """(B, 1, 8, 8) images in [0, 1] -> (B, out_dim) features."""

    def __init__(self, out_dim: int = 32, hidden: int = 64):
        super().__init__()
        self.out_dim = out_dim
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, out_dim))

    def forward(self, x):
        return self.net(x)


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """These tests run thousands of tiny ops (L-BFGS steps, MLP steps on digits); on shared cores a
    second intra-op thread only adds synchronisation waits, so this folder runs single-threaded
    (torch and the BLAS under numpy / scikit-learn), and restores the settings afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits():
    """(x_train, y_train, x_test, y_test): uint8 (N, 1, 8, 8) images and int64 labels, stratified 75/25."""
    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]   # (1797, 1, 8, 8)
    xtr, xte, ytr, yte = train_test_split(images, d.target, test_size=0.25, random_state=0, stratify=d.target)
    return (torch.from_numpy(xtr), torch.from_numpy(ytr).long(), torch.from_numpy(xte), torch.from_numpy(yte).long())


@pytest.fixture(scope="session")
def digit_pixels(digits):
    """Digits as float64 numpy arrays (N, 64) in [0, 1] with labels, for scikit-learn references."""
    xtr, ytr, xte, yte = digits
    flat = lambda x: x.reshape(len(x), -1).double().numpy() / 255
    return flat(xtr), ytr.numpy(), flat(xte), yte.numpy()


def clone_all(*tensors):
    return [t.clone() for t in tensors]


def assert_unchanged(before, after):
    for b, a in zip(before, after):
        assert torch.equal(b, a)
