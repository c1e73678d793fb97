"""Features of a frozen encoder: uint8 images in, (N, F) float32 out, in batches, without gradients."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import nn

from ..data.stream import batches
from ..progress import bar
from . import _checks as check

__all__ = ["embed", "evaluating"]

#: above this many images :func:`embed` shows a progress bar
PROGRESS_MIN_ROWS = 20_000


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and ``torch.no_grad()`` inside; every submodule's own training flag comes back on exit
    (also a mix of train and eval submodules, and also after an exception).

    Example::

        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5)).train()
        >>> with evaluating(net):
        ...     net.training, net(torch.ones(1, 2)).requires_grad
        (False, False)
        >>> net.training
        True
    """
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        for m, flag in flags:
            m.training = flag


def embed(encoder: nn.Module, x: torch.Tensor, *, batch_size: int = 512, normalize: bool = False,
          transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Run ``encoder`` over uint8 images in batches, in eval mode and without gradients.

    Each batch becomes ``x.float() / 255`` on the encoder's device, then ``transform`` (if given: a
    float (B, C, H, W) -> float (B, C, H, W) callable, e.g. a corruption), then the encoder. The
    encoder's training flags are restored afterwards. A tqdm bar shows when N > 20000.

    Example::

        >>> import torch
        >>> enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 8))
        >>> x = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
        >>> z = embed(enc, x, batch_size=4, normalize=True)
        >>> z.shape, z.dtype, round(float(z[0].norm()), 4)
        (torch.Size([10, 8]), torch.float32, 1.0)

    Shape:
        x: (N, C, H, W) uint8 on any device. Output: (N, F) float32 on the encoder's device,
        L2-normalised rows when ``normalize``.
    """
    check.module("encoder", encoder)
    check.uint8_images("x", x)
    bs = check.positive_int("batch_size", batch_size)
    if transform is not None and not callable(transform):
        raise TypeError(f"`transform` must be callable or None, got {type(transform).__name__}")
    device = check.module_device(encoder)
    n = x.shape[0]
    expected = getattr(encoder, "out_dim", None)
    out = None
    with evaluating(encoder):
        starts = range(0, n, bs)
        shown = bar(starts, desc="embed", unit="batch", leave=False, disable=n <= PROGRESS_MIN_ROWS)
        for i, xb in zip(shown, batches(x, bs)):                        # images on disk: decoded ahead by workers
            xb = xb.to(device).float().div_(255)                         # (b, C, H, W), a new tensor
            if transform is not None:
                xb = transform(xb)
            f = encoder(xb)                                              # (b, F)
            if not torch.is_tensor(f) or f.dim() != 2 or f.shape[0] != xb.shape[0]:
                got = tuple(f.shape) if torch.is_tensor(f) else type(f).__name__
                raise ValueError(f"`encoder` must map a batch of {xb.shape[0]} images to features "
                                 f"({xb.shape[0]}, F), got {got}")
            if out is None:
                if isinstance(expected, int) and not isinstance(expected, bool) and f.shape[1] != expected:
                    raise ValueError(f"`encoder` returned F = {f.shape[1]} features but its `out_dim` is {expected}")
                out = torch.empty(n, f.shape[1], dtype=torch.float32, device=f.device)   # (N, F)
            out[i:i + bs] = f
    if normalize:
        out = torch.nn.functional.normalize(out, dim=1)
    return out
