"""``n_views`` augmentations of every example in ONE batched call of the augmentation: the core that
:func:`~contrastlab.views.make_views` (images) and :func:`~contrastlab.views.make_series_views` (series) share
after checking their input.

>>> import torch
>>> def shift(x, *, generator=None):
...     return x + torch.arange(x.shape[0]).view(-1, 1)
>>> repeat_views(torch.zeros(2, 3), shift, n_views=2)[:, :, 0]
tensor([[0., 1.],
        [2., 3.]])
"""
from __future__ import annotations

import torch

from . import validation as check

__all__ = ["repeat_views"]


def repeat_views(x: torch.Tensor, augment, *, n_views: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each row of ``x`` repeated ``n_views`` times, the whole (B*V, ...) batch augmented at once, and reshaped.
    Shape: (B, ...) -> (B, V, ...out)."""
    v = check.positive_int("n_views", n_views)
    b = x.shape[0]
    repeated = x.unsqueeze(1).expand(b, v, *x.shape[1:]).reshape(b * v, *x.shape[1:])    # (B*V, ...)
    out = augment(repeated, generator=generator)
    return out.view(b, v, *out.shape[1:])
