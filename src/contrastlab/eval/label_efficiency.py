"""Label efficiency: how much a pretrained encoder helps when only 1% or 10% of the labels are
kept, against the same architecture trained from scratch with the same recipe (the semi-supervised
protocol of Chen et al. 2020, "Big Self-Supervised Models are Strong Semi-Supervised Learners",
and Hénaff et al. 2020, "Data-Efficient Image Recognition with Contrastive Predictive Coding")."""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from ..losses import validation as lcheck
from ..progress import bar as progress_bar
from . import _checks as check
from .finetune import Augment, _check_recipe, _rng_devices, _train_and_score

__all__ = ["stratified_subset", "label_efficiency"]


def _fraction(value) -> float:
    f = lcheck.positive_number("fractions", value)
    if f > 1:
        raise ValueError(f"`fractions` must hold numbers in (0, 1], got {f!r}")
    return f


def stratified_subset(labels: torch.Tensor, fraction: float, *, seed: int = 0) -> torch.Tensor:
    """Sorted indices of a class-stratified random subset: ``round(fraction * n_c)`` rows of each
    class c present, at least one.

    Example::

        >>> import torch
        >>> idx = stratified_subset(torch.tensor([0] * 10 + [1] * 20), 0.1, seed=0)
        >>> len(idx), int((idx < 10).sum())
        (3, 1)

    Shape:
        labels: (N,) ints >= 0. Output: (n,) int64 indices into labels, ascending.
    """
    if not torch.is_tensor(labels) or labels.dim() != 1 or labels.numel() == 0:
        got = tuple(labels.shape) if torch.is_tensor(labels) else type(labels).__name__
        raise ValueError(f"`labels` must be a non-empty 1-d tensor of class ids (N,), got {got}")
    y = check.class_labels("labels", labels, labels.shape[0], rows_of="labels").cpu()
    f = lcheck.positive_number("fraction", fraction)
    if f > 1:
        raise ValueError(f"`fraction` must be in (0, 1], got {f!r}")
    g = torch.Generator().manual_seed(check.seed(seed))
    order = torch.argsort(y, stable=True)                                     # rows grouped by class
    counts = torch.bincount(y)
    picks, start = [], 0
    for n_c in counts.tolist():
        if n_c:
            take = max(1, math.floor(f * n_c + 0.5))
            picks.append(order[start:start + n_c][torch.randperm(n_c, generator=g)[:take]])
        start += n_c
    return torch.sort(torch.cat(picks)).values


def label_efficiency(make_encoder: Callable[[], nn.Module], pretrained_state_dict: Mapping[str, torch.Tensor],
                     x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor, *,
                     num_classes: int, fractions: Sequence[float] = (0.01, 0.1), steps: int = 500,
                     lr: float = 1e-3, batch_size: int = 256, weight_decay: float = 1e-4, seed: int = 0,
                     augment: Augment | None = None, progress: bool = True) -> dict:
    """Fine-tune pretrained and from-scratch encoders on labelled subsets; report both accuracies.

    For each fraction a stratified subset of (x, y) is drawn (see :func:`stratified_subset`; seeded,
    the same subset for both arms). ``make_encoder()`` builds the architecture: once loaded with
    ``pretrained_state_dict`` (strict), once left at its fresh initialisation (drawn from ``seed``).
    Both go through :func:`contrastlab.eval.finetune`'s recipe — AdamW, cosine decay, linear head —
    for the same number of optimisation ``steps`` (steps rather than epochs, so a 1% subset still
    trains enough), with identical batches and augmentation draws. A tqdm bar counts the steps.

    Example::

        >>> import torch
        >>> def make():
        ...     enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 8))
        ...     enc.out_dim = 8
        ...     return enc
        >>> x = torch.randint(0, 256, (40, 1, 2, 2), dtype=torch.uint8)
        >>> y = torch.arange(40) % 2
        >>> out = label_efficiency(make, make().state_dict(), x, y, x, y, num_classes=2,
        ...                        fractions=(0.1, 0.5), steps=5, progress=False)
        >>> sorted(out), sorted(out[0.1])
        ([0.1, 0.5], ['pretrained', 'scratch'])

    Shape:
        x: (N, C, H, W) uint8 images or (N, C, T) float series; y: (N,) ints in [0, num_classes); x_test:
        (M, ...) as x; y_test: (M,). Output: {fraction: {"pretrained": top1, "scratch": top1}} with accuracies in [0, 1].
    """
    if not callable(make_encoder) or isinstance(make_encoder, nn.Module):
        what = f"a {type(make_encoder).__name__} instance" if isinstance(make_encoder, nn.Module) \
            else type(make_encoder).__name__
        raise TypeError(f"`make_encoder` must be a callable returning a fresh encoder (a class or a function), "
                        f"got {what}")
    if not isinstance(pretrained_state_dict, Mapping):
        raise TypeError(f"`pretrained_state_dict` must be a mapping of parameter names to tensors (a state dict), "
                        f"got {type(pretrained_state_dict).__name__}")
    y, y_test = _check_recipe(x, y, x_test, y_test, num_classes, lr, batch_size, weight_decay, augment)
    if isinstance(fractions, (str, bytes)) or not isinstance(fractions, Sequence) or len(fractions) == 0:
        raise ValueError(f"`fractions` must be a non-empty sequence of numbers in (0, 1], got {fractions!r}")
    fracs = [_fraction(f) for f in fractions]
    n_steps = check.positive_int("steps", steps)
    s = check.seed(seed)

    def build() -> nn.Module:
        with torch.random.fork_rng(devices=_rng_devices()):
            torch.manual_seed(s)
            enc = make_encoder()
        check.module("make_encoder()", enc)
        check.out_dim("make_encoder()", enc)
        return enc

    results: dict = {}
    with progress_bar(total=2 * len(fracs) * n_steps, desc="label efficiency", unit="step", disable=not progress) as bar:
        for j, f in enumerate(fracs):
            idx = stratified_subset(y, f, seed=s + j)
            xs, ys = x[idx.to(x.device)], y[idx.to(y.device)]
            accs = {}
            for arm in ("pretrained", "scratch"):
                enc = build()
                if arm == "pretrained":
                    enc.load_state_dict(pretrained_state_dict)
                bar.set_postfix(fraction=f, arm=arm)
                accs[arm] = _train_and_score(enc, xs, ys, x_test, y_test, num_classes=num_classes, steps=n_steps,
                                             lr=float(lr), batch_size=batch_size, weight_decay=float(weight_decay),
                                             seed=s, augment=augment, on_step=lambda: bar.update(1))
            results[f] = accs
    return results
