"""Sequence encoders: TS2Vec's dilated 1-D CNN (causal or centred) and a small GRU, registered as "dilated_cnn" and
"gru".

Both map float series (B, C, T) to pooled features (B, D) with ``forward`` (max over time, TS2Vec's instance-level
representation), and to per-timestep features (B, T, D) with ``timesteps``; ``out_dim`` is D and ``causal`` says
whether step t's features see only steps <= t (what CPC needs).

>>> enc = create_encoder("dilated_cnn", in_channels=2, depth=3, hidden=16, out_dim=32)
>>> x = torch.randn(4, 2, 50)
>>> enc.timesteps(x).shape, enc(x).shape
(torch.Size([4, 50, 32]), torch.Size([4, 32]))
>>> create_encoder("gru", in_channels=2, hidden=24)(x).shape
torch.Size([4, 24])
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import create_encoder, register_encoder

__all__ = ["DilatedCNN", "GRUEncoder"]


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    return value


class _Block(nn.Module):
    """GELU -> dilated conv -> GELU -> dilated conv, plus a residual (1x1 conv when the width changes)."""

    def __init__(self, i: int, o: int, *, dilation: int, kernel: int, causal: bool, project: bool):
        super().__init__()
        self.conv1 = nn.Conv1d(i, o, kernel, dilation=dilation)
        self.conv2 = nn.Conv1d(o, o, kernel, dilation=dilation)
        self.skip = nn.Conv1d(i, o, 1) if i != o or project else None
        p = (kernel - 1) * dilation
        self.pad = (p, 0) if causal else (p // 2, p - p // 2)

    def forward(self, x):  # (B, i, T) -> (B, o, T)
        res = x if self.skip is None else self.skip(x)
        h = self.conv1(F.pad(F.gelu(x), self.pad))
        return self.conv2(F.pad(F.gelu(h), self.pad)) + res


@register_encoder("dilated_cnn")
class DilatedCNN(nn.Module):
    """TS2Vec's encoder (Yue et al. 2022, section 3.1): a per-step linear input projection to ``hidden`` channels,
    ``depth`` residual blocks of two dilated convolutions (dilation 2^i in block i, kernel 3, GELU) and a last block
    to ``out_dim`` channels. ``causal=True`` pads on the left only (step t sees steps <= t); ``causal=False`` pads
    both sides (TS2Vec's own, centred). ``dropout``: dropout on the per-step features while training (the paper's
    code uses 0.1). The paper's sizes are the defaults: hidden 64, 10 blocks, 320 features."""

    def __init__(self, *, in_channels: int = 1, hidden: int = 64, out_dim: int = 320, depth: int = 10,
                 kernel: int = 3, causal: bool = True, dropout: float = 0.0):
        super().__init__()
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be a number in [0, 1), got {dropout!r}")
        for name, v in (("in_channels", in_channels), ("hidden", hidden), ("out_dim", out_dim), ("depth", depth),
                        ("kernel", kernel)):
            _positive(name, v)
        if not isinstance(causal, bool):
            raise ValueError(f"`causal` must be true or false, got {causal!r}")
        self.causal, self.out_dim = causal, out_dim
        self.input = nn.Conv1d(in_channels, hidden, 1)
        widths = [hidden] * depth + [out_dim]
        self.blocks = nn.Sequential(*[
            _Block(hidden if i == 0 else widths[i - 1], w, dilation=2 ** i, kernel=kernel, causal=causal,
                   project=i == len(widths) - 1) for i, w in enumerate(widths)])
        self.dropout = nn.Dropout(float(dropout))

    def timesteps(self, x):  # (B, C, T) -> (B, T, D)
        return self.dropout(self.blocks(self.input(x))).transpose(1, 2)

    def forward(self, x):  # (B, C, T) -> (B, D)
        return self.timesteps(x).amax(1)


@register_encoder("gru")
class GRUEncoder(nn.Module):
    """A small GRU (Cho et al. 2014): per-step features are its hidden states, causal by construction; pooled
    features are their maximum over time."""

    def __init__(self, *, in_channels: int = 1, hidden: int = 64, layers: int = 1):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("hidden", hidden), ("layers", layers)):
            _positive(name, v)
        self.causal, self.out_dim = True, hidden
        self.gru = nn.GRU(in_channels, hidden, num_layers=layers, batch_first=True)

    def timesteps(self, x):  # (B, C, T) -> (B, T, H)
        return self.gru(x.transpose(1, 2))[0]

    def forward(self, x):  # (B, C, T) -> (B, H)
        return self.timesteps(x).amax(1)
