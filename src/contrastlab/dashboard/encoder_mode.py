"""Encoder mode of the playground: 2-D input data, a small MLP that maps the input plane onto the circle or the
sphere, and positives made by augmenting inputs in the plane.

In free mode every point owns its embedding; here the embedding of a point is ``f(x)``, one function of its input
position, so what the loss teaches is a *function*: the page colours the input plane by where ``f`` sends each
location, and held-out points (never in a batch, drawn hollow) show whether it generalises. A view of an input is
a jittered, scaled and zoomed copy of it, snapped to the nearest training input (as free mode snaps a noisy copy):
the augmentation graph of HaoChen et al. 2021 lives in the input plane, and a strong augmentation links clusters
that the encoder then merges.

Example::

    >>> import torch
    >>> from contrastlab.dashboard.encoder_mode import InputEncoder, make_inputs, field
    >>> x, labels, held = make_inputs("moons", points=100, clusters=2, hard_pair=False,
    ...                               generator=torch.Generator().manual_seed(0))
    >>> x.shape, int(held.sum()), sorted(set(labels.tolist()))
    (torch.Size([100, 2]), 20, [0, 1])
    >>> f = InputEncoder(dim=2, seed=0)
    >>> f(x).norm(dim=1).allclose(torch.ones(100)), field(f, size=8).shape
    (True, torch.Size([64, 2]))
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["INPUTS", "EXTENT", "HELD_OUT", "FIELD_SIZE", "LR_SCALE", "make_inputs", "augment_inputs",
           "InputEncoder", "field", "grid"]

#: The input plane shown and coloured: [-EXTENT, EXTENT]^2 (every generator keeps its points inside).
EXTENT = 3.0
#: Fraction of the points held out of every batch (drawn hollow: the encoder never trained on them).
HELD_OUT = 0.2
#: The plane's colouring is the encoder evaluated on a FIELD_SIZE x FIELD_SIZE grid.
FIELD_SIZE = 48
#: Adam's learning rate is the `lr` control times this (the control's range is set for free mode's SGD).
LR_SCALE = 0.1


def _clusters(n, k, hard_pair, g):
    angle = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k + math.pi / 4
    centres = 1.8 * torch.stack([angle.cos(), angle.sin()], 1)                # (K, 2)
    if hard_pair and k >= 2:
        centres[1] = centres[0] + torch.tensor([0.0, 0.9], dtype=torch.float64)
    labels = torch.arange(n) % k
    return centres[labels] + 0.3 * torch.randn(n, 2, generator=g, dtype=torch.float64), labels


def _moons(n, k, hard_pair, g):
    labels = torch.arange(n) % 2
    t = math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    upper = torch.stack([t.cos(), t.sin()], 1)
    lower = torch.stack([1 - t.cos(), 0.5 - t.sin()], 1)
    x = torch.where(labels[:, None] == 0, upper, lower) - torch.tensor([0.5, 0.25], dtype=torch.float64)
    gap = 0.6 if hard_pair else 1.0                                           # hard pair: the moons interlock closer
    return 1.6 * x * torch.tensor([1.0, gap], dtype=torch.float64) + 0.08 * torch.randn(n, 2, generator=g,
                                                                                         dtype=torch.float64), labels


def _rings(n, k, hard_pair, g):
    labels = torch.arange(n) % k
    radius = 0.5 + 2.2 * labels.double() / max(k - 1, 1)
    if hard_pair and k >= 2:
        radius[labels == 1] = radius[labels == 0][0] + 0.35
    t = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    r = radius + 0.08 * torch.randn(n, generator=g, dtype=torch.float64)
    return torch.stack([r * t.cos(), r * t.sin()], 1), labels


def _spiral(n, k, hard_pair, g):
    labels = torch.arange(n) % k
    t = torch.rand(n, generator=g, dtype=torch.float64)                      # along the arm, 0 (centre) .. 1
    turn = (2 * math.pi / k) * labels.double() * (0.35 if hard_pair and k >= 2 else 1.0)
    a = 1.5 * math.pi * t + turn
    r = 0.3 + 2.4 * t
    return torch.stack([r * a.cos(), r * a.sin()], 1) + 0.07 * torch.randn(n, 2, generator=g,
                                                                           dtype=torch.float64), labels


#: Input data generators: name -> (points, clusters, hard_pair, generator) -> (x (N, 2) float64, labels (N,)).
INPUTS: dict[str, Callable] = {"clusters": _clusters, "moons": _moons, "rings": _rings, "spiral": _spiral}


def make_inputs(kind: str, *, points: int, clusters: int, hard_pair: bool,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input positions (N, 2) float32 inside [-EXTENT, EXTENT]^2, labels (N,) and the held-out mask (N,) bool
    (:data:`HELD_OUT` of each class, the same points for the same seed). ``moons`` has 2 classes whatever
    ``clusters`` says; ``hard_pair`` brings two classes close together."""
    if kind not in INPUTS:
        raise ValueError(f"`inputs` must be one of {sorted(INPUTS)}, got {kind!r}")
    x, labels = INPUTS[kind](points, clusters, hard_pair, generator)
    held = torch.zeros(points, dtype=torch.bool)
    order = torch.randperm(points, generator=generator)
    for c in labels.unique().tolist():
        rows = order[labels[order] == c]
        held[rows[: int(round(HELD_OUT * rows.shape[0]))]] = True
    return x.clamp(-0.97 * EXTENT, 0.97 * EXTENT).float(), labels, held


def augment_inputs(x: torch.Tensor, *, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Views of input positions: a zoom about a random centre (a crop-like rescaling of the plane), a random
    scaling about the origin and Gaussian jitter, each growing with ``strength`` (0: the inputs unchanged).

    Shape: x (B, 2) -> (B, 2).
    """
    b = x.shape[0]
    centre = x + 2.0 * strength * torch.randn(b, 2, generator=generator)              # zoom about a nearby point
    zoom = torch.exp(0.5 * strength * torch.randn(b, 1, generator=generator))
    scale = torch.exp(0.3 * strength * torch.randn(b, 1, generator=generator))
    jitter = 0.5 * strength * torch.randn(b, 2, generator=generator)
    return (centre + (x - centre) * zoom) * scale + jitter


class InputEncoder(nn.Module):
    """The encoder of encoder mode: 2 -> 64 -> 64 -> dim (GELU), outputs on the unit circle/sphere; inputs are
    divided by :data:`EXTENT` first. Seeded, so a seed gives the same initial function."""

    def __init__(self, *, dim: int, seed: int, hidden: int = 64):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"`dim` must be 2 or 3, got {dim!r}")
        g = torch.Generator().manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, dim))
        with torch.no_grad():
            for layer in self.net:
                if isinstance(layer, nn.Linear):                             # torch's default init, from our generator
                    bound = 1 / math.sqrt(layer.in_features)
                    layer.weight.uniform_(-bound, bound, generator=g)
                    layer.bias.uniform_(-bound, bound, generator=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:                     # (B, 2) -> (B, dim)
        return nn.functional.normalize(self.net(x / EXTENT), dim=1)


def grid(size: int = FIELD_SIZE) -> torch.Tensor:
    """Centres of a size x size grid over [-EXTENT, EXTENT]^2, row by row from the top (largest y) left to right.

    Shape: (size * size, 2).
    """
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 * EXTENT - EXTENT
    yy, xx = torch.meshgrid(c.flip(0), c, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)


@torch.no_grad()
def field(encoder: InputEncoder, *, size: int = FIELD_SIZE) -> torch.Tensor:
    """Where the encoder sends each cell of the input plane's grid (:func:`grid`): (size * size, dim) unit rows."""
    return encoder(grid(size))
