"""Robustness of a frozen encoder: a linear probe trained once on clean features, scored on
corrupted copies of the test set (Hendrycks & Dietterich 2019, "Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations")."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from ..losses import validation as lcheck
from . import _checks as check
from .corruptions import CORRUPTIONS, DEFAULT_SEVERITIES
from .embed import embed
from .linear import fit_linear_probe

__all__ = ["robustness"]


def _severities(value) -> dict[str, list[float]]:
    if value is None:
        value = DEFAULT_SEVERITIES
    if not isinstance(value, Mapping) or not value:
        raise TypeError(f"`severities` must be a non-empty mapping of corruption name to a sequence of severities, "
                        f"got {value!r}")
    out = {}
    for name, sevs in value.items():
        if name not in CORRUPTIONS:
            raise ValueError(f"`severities` keys must be among {sorted(CORRUPTIONS)}, got {name!r}")
        if isinstance(sevs, (str, bytes)) or not isinstance(sevs, Sequence) or len(sevs) == 0:
            raise ValueError(f"`severities[{name!r}]` must be a non-empty sequence of numbers, got {sevs!r}")
        out[name] = [lcheck.positive_number(f"severities[{name!r}]", s, allow_zero=True) for s in sevs]
    return out


def robustness(encoder: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
               y_test: torch.Tensor, *, severities: Mapping[str, Sequence[float]] | None = None,
               num_classes: int | None = None, epochs: int = 100, weight_decay: float = 1e-4,
               batch_size: int = 512, seed: int = 0) -> dict:
    """Linear-probe accuracy under each corruption and severity.

    The probe (:func:`contrastlab.eval.fit_linear_probe`) is fitted once on clean train features;
    each (corruption, severity) re-embeds the test set with the corruption applied to every batch
    of ``x.float() / 255`` (see :mod:`contrastlab.eval.corruptions`). Random corruptions draw from a
    generator seeded with ``seed`` afresh for each pair, so every entry is reproducible on its own.

    Example::

        >>> import torch
        >>> enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))
        >>> x = torch.randint(0, 256, (20, 1, 4, 4), dtype=torch.uint8)
        >>> y = torch.arange(20) % 2
        >>> out = robustness(enc, x, y, x, y, severities={"blur": [0.5, 1.0]}, epochs=5)
        >>> list(out), list(out["blur"])
        (['blur'], [0.5, 1.0])

    Shape:
        x_train: (N, C, H, W) uint8; y_train: (N,); x_test: (M, C, H, W) uint8; y_test: (M,).
        severities: {name: [severity, ...]} over "gaussian_noise", "blur", "contrast"; defaults to
        ``DEFAULT_SEVERITIES``. Output: {name: {severity: top1}} with accuracies in [0, 1].
    """
    check.module("encoder", encoder)
    check.uint8_images("x_train", x_train)
    check.uint8_images("x_test", x_test)
    c = check.optional_num_classes(num_classes)
    ytr = check.class_labels("y_train", y_train, x_train.shape[0], rows_of="x_train", num_classes=c)
    yte = check.class_labels("y_test", y_test, x_test.shape[0], rows_of="x_test", num_classes=c)
    plan = _severities(severities)
    s = check.seed(seed)
    c = max(int(ytr.max()), int(yte.max())) + 1 if c is None else c

    probe = fit_linear_probe(embed(encoder, x_train, batch_size=batch_size), ytr, num_classes=c, epochs=epochs,
                             weight_decay=weight_decay)
    results: dict = {}
    for name, sevs in plan.items():
        fn = CORRUPTIONS[name]
        results[name] = {}
        for sev in sevs:
            g = torch.Generator().manual_seed(s)
            feats = embed(encoder, x_test, batch_size=batch_size,
                          transform=lambda xb, fn=fn, sev=sev, g=g: fn(xb, sev, generator=g))
            results[name][sev] = probe.accuracy(feats, yte)
    return results
