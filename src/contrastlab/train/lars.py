"""LARS (You et al. 2017, "Large Batch Training of Convolutional Networks"), as SimCLR uses it: SGD with momentum
whose step for each weight tensor is scaled by trust = eta * ||w|| / ||g + wd * w|| (weight decay folded into
the gradient first, as in SimCLR's implementation). Groups with
`lars_exclude=True` (biases and norm weights, see `contrastlab.optim.param_groups`) get neither the trust ratio nor
weight decay.

>>> import torch
>>> w = torch.nn.Parameter(torch.ones(3, 3))
>>> opt = LARS([w], lr=0.1)
>>> w.grad = torch.ones(3, 3); opt.step()
>>> bool((w < 1).all())
True
"""
from __future__ import annotations

import torch

__all__ = ["LARS"]


class LARS(torch.optim.Optimizer):
    def __init__(self, params, *, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.001,
                 lars_exclude: bool = False):
        if lr <= 0:
            raise ValueError(f"`lr` must be > 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"`momentum` must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"`weight_decay` must be >= 0, got {weight_decay}")
        if eta <= 0:
            raise ValueError(f"`eta` must be > 0, got {eta}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta,
                                      lars_exclude=lars_exclude))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if not group["lars_exclude"]:
                    wd = group["weight_decay"]
                    if wd:
                        g = g.add(p, alpha=wd)
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    trust = torch.where((w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm,
                                        torch.ones_like(w_norm))
                    g = g.mul(trust)
                buf = self.state[p].get("momentum_buffer")
                if buf is None:
                    buf = self.state[p]["momentum_buffer"] = g.clone()
                else:
                    buf.mul_(group["momentum"]).add_(g)
                p.add_(buf, alpha=-group["lr"])
        return loss
