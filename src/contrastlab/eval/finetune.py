"""End-to-end fine-tuning of an encoder with a linear head: AdamW, cosine learning-rate decay,
cross-entropy (the fine-tuning protocol of e.g. Chen et al. 2020, "Big Self-Supervised Models are
Strong Semi-Supervised Learners", SimCLRv2)."""

from __future__ import annotations

import copy
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import devices
from ..losses import validation as lcheck
from ..optim import param_groups
from . import _checks as check
from .inputs import INPUTS, batch_shape, input_kind

__all__ = ["finetune"]

Augment = Callable[..., torch.Tensor]


class _Classifier(nn.Module):
    """encoder (B, C, H, W) -> (B, F), then a zero-initialised linear head -> (B, num_classes)."""

    def __init__(self, encoder: nn.Module, num_classes: int):
        super().__init__()
        self.encoder = encoder
        dim = check.out_dim("encoder", encoder)
        self.head = nn.Linear(dim, num_classes).to(check.module_device(encoder))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def _rng_devices() -> list[int]:
    return devices.rng_devices()


def _batches(n: int, batch_size: int, steps: int, generator: torch.Generator):
    """Index batches of min(batch_size, n) rows, read off a stream of fresh permutations of range(n)."""
    b = min(batch_size, n)
    stream = torch.empty(0, dtype=torch.int64)
    for _ in range(steps):
        if len(stream) < b:
            stream = torch.cat([stream, torch.randperm(n, generator=generator)])
        yield stream[:b]
        stream = stream[b:]


def _check_recipe(x, y, x_test, y_test, num_classes, lr, batch_size, weight_decay, augment):
    """Validate the shared arguments of :func:`finetune` and ``label_efficiency``; returns labels."""
    kind, test_kind = input_kind("x", x), input_kind("x_test", x_test)
    if kind != test_kind:
        raise ValueError(f"`x` and `x_test` must be the same kind of input, got {kind} "
                         f"{batch_shape(INPUTS[kind])} and {test_kind} {batch_shape(INPUTS[test_kind], 'M')}")
    c = check.positive_int("num_classes", num_classes)
    y = check.class_labels("y", y, x.shape[0], rows_of="x", num_classes=c)
    y_test = check.class_labels("y_test", y_test, x_test.shape[0], rows_of="x_test", num_classes=c)
    if x.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"`x` and `x_test` must have the same {INPUTS[kind].noun} shape {INPUTS[kind].example}, got "
                         f"{tuple(x.shape[1:])} and {tuple(x_test.shape[1:])}")
    lcheck.positive_number("lr", lr)
    check.positive_int("batch_size", batch_size)
    lcheck.positive_number("weight_decay", weight_decay, allow_zero=True)
    if augment is not None and not callable(augment):
        raise TypeError(f"`augment` must be callable as augment(x_batch, generator=g) or None, "
                        f"got {type(augment).__name__}")
    return y, y_test


def _train_and_score(encoder: nn.Module, x, y, x_test, y_test, *, num_classes: int, steps: int, lr: float,
                     batch_size: int, weight_decay: float, seed: int, augment: Augment | None,
                     on_step: Callable[[], None] | None = None) -> float:
    """Train ``encoder`` (in place; callers pass a copy) with a new head for ``steps`` AdamW steps
    on validated inputs, return top-1 on the test set. Every random draw comes from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    kind = INPUTS[input_kind("x", x)]
    with torch.random.fork_rng(devices=_rng_devices()), torch.enable_grad():
        torch.manual_seed(seed)                                              # dropout etc.; global state restored
        model = _Classifier(encoder, num_classes).train()
        device = check.module_device(model)
        opt = torch.optim.AdamW(param_groups(model, weight_decay=weight_decay), lr=lr)
        y = y.to(device)
        for step, idx in enumerate(_batches(x.shape[0], batch_size, steps, g)):
            xb = x[idx].to(device)                                           # (b, C, H, W) uint8 or (b, C, T)
            xf = kind.to_float(xb) if augment is None else augment(xb, generator=g)
            if not torch.is_tensor(xf) or not xf.is_floating_point() or xf.dim() != x.dim() or xf.shape[0] != len(idx):
                got = tuple(xf.shape) if torch.is_tensor(xf) else type(xf).__name__
                raise ValueError(f"`augment` must return a float tensor {batch_shape(kind, 'B')} with B = "
                                 f"{len(idx)}, got {got}")
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
            loss = F.cross_entropy(model(xf), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if on_step is not None:
                on_step()
    pred = kind.features(model, x_test, batch_size=max(batch_size, 512)).argmax(1)   # (M,)
    return float((pred == y_test.to(pred.device)).double().mean())


def finetune(encoder: nn.Module, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor, *,
             num_classes: int, epochs: int = 10, lr: float = 1e-3, batch_size: int = 256, seed: int = 0,
             augment: Augment | None = None, weight_decay: float = 1e-4) -> float:
    """Fine-tune every parameter of ``encoder`` plus a new linear head, return test top-1 in [0, 1].

    A copy of ``encoder`` is trained (the argument is left untouched) with a zero-initialised head
    ``nn.Linear(encoder.out_dim, num_classes)``, AdamW (biases and norms without weight decay),
    a cosine learning-rate decay to 0 and cross-entropy, for ``epochs * ceil(N / batch_size)``
    steps of full batches drawn from reshuffled passes over the data. Training batches are
    ``augment(x_uint8, generator=g)`` when given (a CPU ``torch.Generator``, must return float
    (B, C, H, W)), else ``x.float() / 255``; float series (N, C, T) are taken as they are (``augment`` then maps
    (B, C, T) to (B, C, T)). Batch order, augmentation and dropout all follow
    ``seed``; the global RNG state is left as it was.

    Example::

        >>> import torch
        >>> enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 8))
        >>> enc.out_dim = 8
        >>> x = torch.tensor([[[[0, 0], [255, 255]]], [[[255, 255], [0, 0]]]] * 8, dtype=torch.uint8)
        >>> y = torch.tensor([0, 1] * 8)
        >>> finetune(enc, x, y, x, y, num_classes=2, epochs=20, lr=1e-2, batch_size=4)
        1.0

    Shape:
        x: (N, C, H, W) uint8 or (N, C, T) float; y: (N,) ints in [0, num_classes); x_test: (M, ...) as x;
        y_test: (M,).
    """
    check.module("encoder", encoder)
    check.out_dim("encoder", encoder)
    y, y_test = _check_recipe(x, y, x_test, y_test, num_classes, lr, batch_size, weight_decay, augment)
    steps = check.positive_int("epochs", epochs) * math.ceil(x.shape[0] / batch_size)
    return _train_and_score(copy.deepcopy(encoder), x, y, x_test, y_test, num_classes=num_classes, steps=steps,
                            lr=float(lr), batch_size=batch_size, weight_decay=float(weight_decay),
                            seed=check.seed(seed), augment=augment)
