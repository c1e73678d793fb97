"""Evaluation of sequence encoders on frozen pooled features, and the raw-series baseline.

* :func:`svm_accuracy`: TS2Vec's protocol (Yue et al. 2022, section 4.1): an RBF SVM (``gamma="scale"``) whose C is
  chosen from {1e-4, ..., 1e4, inf} by 5-fold stratified cross-validation on the training features; with fewer
  than 5 training series per class or fewer than 50 in all it is fitted with C = inf directly, as in the paper's
  code;
* :func:`~contrastlab.eval.linear_probe` (L-BFGS logistic regression) on the same features;
* :func:`one_nn_euclidean`: 1-NN with Euclidean distance on the raw series, the UCR archive's reference
  classifier.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.arange(60) % 2
    >>> x = torch.randn(60, 1, 20, generator=g) + 2 * y.view(-1, 1, 1)
    >>> one_nn_euclidean(x[:40], y[:40], x[40:], y[40:])
    1.0
    >>> svm_accuracy(x[:40].flatten(1), y[:40], x[40:].flatten(1), y[40:])["top1"]
    1.0
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import _checks as check
from .embed import evaluating

__all__ = ["embed_series", "svm_accuracy", "one_nn_euclidean", "SVM_C_GRID"]

SVM_C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, np.inf)


def embed_series(encoder: nn.Module, x: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """Pooled features of float series in batches, in eval mode and without gradients (training flags restored).
    Shape: (N, C, T) -> (N, F) float32 on the encoder's device."""
    check.module("encoder", encoder)
    if not torch.is_tensor(x) or x.dim() != 3 or not x.is_floating_point():
        raise ValueError(f"`x` must be a float tensor of shape (N, C, T), got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
    bs = check.positive_int("batch_size", batch_size)
    device = check.module_device(encoder)
    with evaluating(encoder):
        out = [encoder(x[i:i + bs].to(device)).float() for i in range(0, x.shape[0], bs)]
    return torch.cat(out)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def svm_accuracy(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                 test_labels: torch.Tensor, *, seed: int = 0) -> dict:
    """Test accuracy of an RBF SVM on frozen features with C chosen by cross-validation (see the module).
    Returns {"top1": accuracy in [0, 1], "C": the chosen C (inf as a float)}.

    Shape: train_feats (N, F), train_labels (N,), test_feats (M, F), test_labels (M,)."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC
    check.features("train_feats", train_feats)
    check.features("test_feats", test_feats, rows="M")
    check.same_width("train_feats", train_feats, "test_feats", test_feats)
    ytr = _numpy(check.class_labels("train_labels", train_labels, train_feats.shape[0], rows_of="train_feats",
                                    num_classes=None)).astype(np.int64)
    yte = _numpy(check.class_labels("test_labels", test_labels, test_feats.shape[0], rows_of="test_feats",
                                    num_classes=None)).astype(np.int64)
    xtr, xte = _numpy(train_feats), _numpy(test_feats)
    classes = np.unique(ytr)
    if len(classes) < 2:
        raise ValueError(f"`train_labels` must hold at least 2 classes for an SVM, got {classes.tolist()}")
    if len(ytr) // len(classes) < 5 or len(ytr) < 50:
        svm, c = SVC(C=np.inf, gamma="scale").fit(xtr, ytr), np.inf
    else:
        folds = max(2, min(5, int(np.unique(ytr, return_counts=True)[1].min())))
        search = GridSearchCV(SVC(gamma="scale"), {"C": list(SVM_C_GRID)}, n_jobs=1,
                              cv=StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed))
        search.fit(xtr, ytr)
        svm, c = search.best_estimator_, float(search.best_params_["C"])
    return {"top1": float((svm.predict(xte) == yte).mean()), "C": float(c)}


def one_nn_euclidean(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor) -> float:
    """Accuracy of 1-NN with Euclidean distance on the raw (flattened) series, in float64 (ties: the first).
    Shape: x (N, C, T), y (N,), x_test (M, C, T), y_test (M,)."""
    a, b = x.flatten(1).double(), x_test.flatten(1).double()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"`x_test` must have the same C x T = {a.shape[1]} values per series as `x`, got {b.shape[1]}")
    nearest = torch.cdist(b, a).argmin(1)                                              # (M,)
    return float((y[nearest] == y_test).double().mean())
