"""Mixed precision: bf16 or fp16 autocast for the encoder, fp32 for the logits, a gradient scaler for fp16.

* ``"bf16"``: autocast to bfloat16 (CPUs and Ampere-or-newer GPUs); same exponent range as fp32, no scaler.
* ``"fp16"``: autocast to float16 with a :class:`torch.amp.GradScaler` (small gradients underflow in fp16).
* ``"fp32"``: no autocast; every helper here is then a no-op.

Contrastive logits are cosines divided by a temperature (up to 1/0.01 = 100): in bf16 they keep only ~3
significant digits, so the softmax over thousands of negatives is visibly wrong. :func:`fp32_loss` wraps a loss
so it runs with autocast off and half-precision inputs cast to float32 (contrastlab's own losses also compute
in float32 when given fp16/bf16 embeddings).

Example::

    >>> import torch
    >>> from contrastlab import devices
    >>> from contrastlab.losses import nt_xent
    >>> net = torch.nn.Linear(8, 4)
    >>> amp = MixedPrecision(devices.CPU, "bf16")
    >>> with amp.autocast():
    ...     z_a, z_b = net(torch.randn(6, 8)), net(torch.randn(6, 8))
    ...     loss = fp32_loss(nt_xent)(z_a, z_b, temperature=0.1)
    >>> z_a.dtype, loss.dtype
    (torch.bfloat16, torch.float32)
    >>> amp.backward(loss)
    >>> amp.step(torch.optim.SGD(net.parameters(), lr=0.1))
    True
"""
from __future__ import annotations

import contextlib
import functools
from typing import Callable

import torch
from torch import nn

from .. import devices

__all__ = ["PRECISIONS", "check_precision", "autocast_context", "fp32_loss", "grad_scaler", "MixedPrecision",
           "maybe_compile"]

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPE = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(device, precision: str) -> torch.device:
    """Validate a (device, precision) pair; returns the device. Raises a clear error where it is unsupported (the
    rules per device live in :mod:`contrastlab.devices`). ``precision`` is resolved already: fp32 | bf16 | fp16."""
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {list(PRECISIONS)}, got {precision!r}")
    dev = devices.check_device(device)
    devices.check_precision(dev, precision)
    return dev


def autocast_context(device, precision: str):
    """A context manager: autocast to bf16 / fp16 on ``device``'s type, or nothing for fp32."""
    dev = check_precision(device, precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(dev.type, dtype=_DTYPE[precision])


def _to_fp32(value):
    if torch.is_tensor(value) and value.dtype in (torch.float16, torch.bfloat16):
        return value.float()
    if isinstance(value, (tuple, list)):
        return type(value)(_to_fp32(v) for v in value)
    return value


def _autocast_off():
    stack = contextlib.ExitStack()
    for kind in devices.autocast_types():
        stack.enter_context(torch.autocast(kind, enabled=False))
    return stack


def fp32_loss(loss_fn: Callable) -> Callable:
    """Wrap a loss so it runs with autocast disabled and its fp16 / bf16 tensor arguments (also inside tuples and
    lists) cast to float32 first: the similarity matrix and its softmax are computed in float32."""
    @functools.wraps(loss_fn)
    def wrapped(*args, **kwargs):
        with _autocast_off():
            return loss_fn(*_to_fp32(args), **{k: _to_fp32(v) for k, v in kwargs.items()})
    return wrapped


def grad_scaler(device, precision: str) -> torch.amp.GradScaler:
    """A GradScaler that is active for fp16 only; for fp32 and bf16 it is disabled (``scale`` returns the loss
    unchanged and ``step`` just steps)."""
    dev = check_precision(device, precision)
    return torch.amp.GradScaler(dev.type, enabled=precision == "fp16")


class MixedPrecision:
    """One object for a training step's precision: ``autocast()`` around the forward, ``backward(loss)``,
    ``step(optimizer)`` (unscale, optional clipping, skip on inf/NaN with fp16). ``loss_fn`` wrapped by
    :func:`fp32_loss` keeps the logits in float32. ``state_dict`` holds the scaler (save it in checkpoints)."""

    def __init__(self, device, precision: str = "fp32"):
        self.device = check_precision(device, precision)
        self.precision = precision
        self.scaler = grad_scaler(self.device, precision)

    def autocast(self):
        return autocast_context(self.device, self.precision)

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to call ``backward`` on (multiplied by the current scale with fp16)."""
        return self.scaler.scale(loss)

    def backward(self, loss: torch.Tensor) -> None:
        self.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, *, max_grad_norm: float | None = None) -> bool:
        """Unscale, clip to ``max_grad_norm`` if given, step and update the scale; False if fp16 skipped the step
        because a gradient was inf or NaN (the scale is then lowered)."""
        if max_grad_norm is not None:
            self.scaler.unscale_(optimizer)
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            nn.utils.clip_grad_norm_(params, max_grad_norm)
        before = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.scaler.step(optimizer)
        self.scaler.update()
        return before is None or self.scaler.get_scale() >= before

    def state_dict(self) -> dict:
        return {"precision": self.precision, "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("precision") != self.precision:
            raise ValueError(f"checkpoint precision {state.get('precision')!r} differs from {self.precision!r}")
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])


def maybe_compile(module: nn.Module, *, enabled: bool, backend: str = "inductor", mode: str | None = None):
    """``torch.compile(module)`` when ``enabled`` (first steps are slow while it compiles; on CPU the inductor
    backend needs a C++ compiler), else ``module`` unchanged."""
    if not enabled:
        return module
    if not hasattr(torch, "compile"):
        raise RuntimeError(f"`compile` needs torch >= 2.0, this is torch {torch.__version__}")
    return torch.compile(module, backend=backend, mode=mode)
