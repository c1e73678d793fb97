"""Two-tower losses: CLIP's symmetric InfoNCE with a learnable temperature, and SigLIP's sigmoid loss."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from . import validation as check
from .lse import TILE, log1p_exp, tiled_lse

__all__ = ["clip_loss", "logistic", "LearnableTemperature"]


def _two_towers(fn: str, names: tuple[str, str], a, b):
    check.pair(names[0], a, names[1], b)
    if a.shape[0] < 2:
        raise ValueError(f"`{fn}` needs a batch of at least 2 pairs (in-batch negatives), got B=1")
    dt = check.compute_dtype(a, b)
    return check.normalize(a, dt), check.normalize(b, dt)


def clip_loss(a: torch.Tensor, b: torch.Tensor, *, logit_scale) -> torch.Tensor:
    """Symmetric cross-entropy of a two-tower model (Radford et al. 2021, "Learning Transferable
    Visual Models From Natural Language Supervision").

    ``logits = logit_scale * cos(a_i, b_j)``; the loss averages the cross-entropy of each row
    (a -> b) and each column (b -> a) against the matching pair on the diagonal. Both directions
    come from one tiled pass, so memory stays linear in B.

    Example::

        >>> import torch
        >>> from contrastlab.losses import clip_loss, LearnableTemperature
        >>> scale = LearnableTemperature()
        >>> clip_loss(torch.randn(8, 16), torch.randn(8, 16), logit_scale=scale()).shape
        torch.Size([])

    Shape:
        a, b: (B, D) embeddings of the two towers (normalised inside). logit_scale: float or a
        scalar tensor (learnable; see :class:`LearnableTemperature`). Output: scalar.
    """
    x, y = _two_towers("clip_loss", ("a", "b"), a, b)
    s = check.positive_number("logit_scale", logit_scale, allow_tensor=True)
    x = x * (s.to(x.dtype).reshape(()) if torch.is_tensor(s) else s)            # scale folded into one side
    rows, cols = tiled_lse(x, y, scale=1.0, columns=True, exclude_diag=True)   # (B,), (B,) negatives only
    pos = (x * y).sum(1)                                                       # (B,)
    per = log1p_exp(rows - pos) + log1p_exp(cols - pos)                          # log(1 + sum_k e^{l_k - l+}), twice
    return (per.sum() / 2).div(a.shape[0]).to(a.dtype)


def _softplus_block(x_r, y, inv_t, bias, r0):
    """sum of softplus(logit) over rows r0.. of the negatives (the diagonal, global i == j, left out)."""
    logits = x_r @ y.t() * inv_t + bias                                        # (T, B)
    logits.diagonal(r0).fill_(float("-inf"))                                   # softplus(-inf) = 0
    return torch.nn.functional.softplus(logits).sum()


def logistic(z_a: torch.Tensor, z_b: torch.Tensor, *, temperature=0.1, bias=-10.0) -> torch.Tensor:
    """Pairwise sigmoid loss of SigLIP (Zhai et al. 2023, "Sigmoid Loss for Language Image
    Pre-Training").

    Every (i, j) pair is a binary problem: positive on the diagonal, negative elsewhere, with
    ``logit = cos(a_i, b_j) / temperature + bias``:
    ``L = -(1/B) sum_ij log sigmoid(y_ij * logit_ij)``. The defaults are the paper's initialisation
    (scale 10, bias -10). Row blocks are recomputed in backward (checkpointing), so memory stays
    linear in B.

    Example::

        >>> import torch
        >>> from contrastlab.losses import logistic
        >>> logistic(torch.randn(8, 16), torch.randn(8, 16)).shape
        torch.Size([])

    Shape:
        z_a, z_b: (B, D). temperature, bias: floats or scalar tensors (learnable). Output: scalar.
    """
    x, y = _two_towers("logistic", ("z_a", "z_b"), z_a, z_b)
    t = check.positive_number("temperature", temperature, allow_tensor=True)
    bias = check.real_number("bias", bias, allow_tensor=True)
    inv_t = 1.0 / t
    if torch.is_tensor(inv_t):
        inv_t = inv_t.to(x.dtype).reshape(())
    if torch.is_tensor(bias):
        bias = bias.to(x.dtype).reshape(())
    pos = (x * y).sum(1) * inv_t + bias                                        # (B,) diagonal logits
    total = log1p_exp(-pos).sum()           # -log sigmoid(l) on the diagonal, exact where l >> 0
    track = torch.is_grad_enabled() and any(torch.is_tensor(v) and v.requires_grad for v in (x, y, inv_t, bias))
    for r0 in range(0, x.shape[0], TILE):
        x_r = x[r0:r0 + TILE]
        if track:
            total = total + checkpoint(_softplus_block, x_r, y, inv_t, bias, r0, use_reentrant=False)
        else:
            total = total + _softplus_block(x_r, y, inv_t, bias, r0)
    return (total / x.shape[0]).to(z_a.dtype)


class LearnableTemperature(nn.Module):
    """A learnable logit scale (1 / temperature), as in CLIP: stored as its log, initialised at
    ``1 / initial_temperature`` and clamped to ``max_scale`` (CLIP: 1/0.07 and 100).

    The clamp is applied to the parameter itself before each use (so the gradient never vanishes at
    the bound), and :meth:`no_weight_decay` lists the parameter so optimisers leave it out of weight
    decay (see :func:`contrastlab.optim.param_groups`).

    Example::

        >>> import torch
        >>> from contrastlab.losses import LearnableTemperature
        >>> scale = LearnableTemperature()
        >>> round(float(scale()), 3), round(scale.temperature, 3)
        (14.286, 0.07)
    """

    def __init__(self, *, initial_temperature: float = 0.07, max_scale: float = 100.0):
        super().__init__()
        t = check.positive_number("initial_temperature", initial_temperature)
        m = check.positive_number("max_scale", max_scale)
        if 1.0 / t > m:
            raise ValueError(f"`initial_temperature` must be >= 1 / max_scale = {1.0 / m!r}, got {t!r}")
        self.max_scale = m
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / t)))
        self.log_scale._no_weight_decay = True

    def forward(self) -> torch.Tensor:
        with torch.no_grad():
            self.log_scale.clamp_(max=math.log(self.max_scale))
        return self.log_scale.exp()

    @property
    def temperature(self) -> float:
        return float(torch.exp(-self.log_scale.detach().clamp(max=math.log(self.max_scale))))

    def no_weight_decay(self) -> set[str]:
        return {"log_scale"}

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:.4g}, max_scale={self.max_scale:g}"
