"""The two kinds of input the fine-tuning recipe (:func:`~contrastlab.eval.finetune`,
:func:`~contrastlab.eval.label_efficiency`) takes: uint8 images (N, C, H, W), scaled to [0, 1], and float series
(N, C, T), used as they are. One registry, keyed by the kind :func:`input_kind` reads off the tensor.

>>> import torch
>>> input_kind("x", torch.zeros(2, 1, 4, 4, dtype=torch.uint8)), input_kind("x", torch.zeros(2, 3, 50))
('images', 'series')
>>> INPUTS["images"].to_float(torch.full((1, 1, 1, 1), 255, dtype=torch.uint8)).item()
1.0
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from . import _checks as check
from .embed import embed
from .sequences import embed_series

__all__ = ["InputKind", "INPUTS", "input_kind", "batch_shape"]


@dataclass(frozen=True)
class InputKind:
    """How the recipe reads one kind of input: its words, its float form, and its batched features."""
    noun: str                                                         # "image"
    example: str                                                      # one example's shape: "(C, H, W)"
    dtype: str                                                        # "uint8"
    to_float: Callable[[torch.Tensor], torch.Tensor]                  # a batch as the encoder takes it
    features: Callable[..., torch.Tensor]                             # features(encoder, x, batch_size=) -> (N, F)


INPUTS: dict[str, InputKind] = {
    "images": InputKind("image", "(C, H, W)", "uint8", lambda x: x.float().div_(255), embed),
    "series": InputKind("series", "(C, T)", "float", lambda x: x.float(), embed_series),
}


def batch_shape(kind: InputKind, rows: str = "N") -> str:
    """``"(N, C, H, W)"`` and the like."""
    return f"({rows}, {kind.example[1:]}"


def input_kind(name: str, x) -> str:
    """``"images"`` for a uint8 (N, C, H, W) tensor, ``"series"`` for a float (N, C, T) one; else a clear error."""
    if torch.is_tensor(x) and x.dim() == 3 and x.is_floating_point():
        if x.numel() == 0:
            raise ValueError(f"`{name}` must not be empty, got shape {tuple(x.shape)}")
        return "series"
    if torch.is_tensor(x) and x.is_floating_point():
        raise ValueError(f"`{name}` must be uint8 images {batch_shape(INPUTS['images'])} or float series "
                         f"{batch_shape(INPUTS['series'])}, got a float tensor of shape {tuple(x.shape)}")
    check.uint8_images(name, x)
    return "images"
