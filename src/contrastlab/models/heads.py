"""Projection heads (SimCLR, Chen et al. 2020): the loss sees g(h), evaluation uses h.

>>> head = ProjectionHead(128, hidden_dim=128, out_dim=64)
>>> head(torch.randn(8, 128)).shape
torch.Size([8, 64])
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["ProjectionHead"]


class ProjectionHead(nn.Module):
    """Linear -> BN -> ReLU -> Linear (`num_layers=2`, the SimCLR paper's head); more layers repeat the middle;
    `num_layers=1` is a single Linear, `num_layers=0` the identity."""

    def __init__(self, in_dim: int, *, hidden_dim: int = 512, out_dim: int = 128, num_layers: int = 2):
        super().__init__()
        for name, v in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("out_dim", out_dim)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")
        if not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"`num_layers` must be an int >= 0, got {num_layers!r}")
        layers, d = [], in_dim
        for _ in range(max(num_layers - 1, 0)):
            layers += [nn.Linear(d, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
            d = hidden_dim
        if num_layers >= 1:
            layers.append(nn.Linear(d, out_dim))
            d = out_dim
        self.net = nn.Sequential(*layers)
        self.out_dim = d

    def forward(self, h):  # (B, F) -> (B, out_dim)
        return self.net(h)
