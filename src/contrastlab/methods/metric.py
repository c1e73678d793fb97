"""Triplet / Siamese metric learning (Schroff et al. 2015; Hermans et al. 2017) with the loss library's miners.

With labels, every same-class image in the batch is a positive; without labels, the two views of one image are
the only positives (instance discrimination with a margin).

>>> import torch
>>> from contrastlab.models import create_encoder
>>> enc = create_encoder("small_cnn", in_channels=1)
>>> m = Triplet(enc, feature_dim=enc.out_dim)
>>> m({"views": torch.rand(8, 2, 1, 28, 28), "labels": torch.arange(8) % 3}).loss.ndim
0
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import triplet
from ..models import ProjectionHead
from .base import Method, StepOutput, register_method

__all__ = ["Triplet"]


@register_method("triplet")
class Triplet(Method):
    def __init__(self, encoder, *, feature_dim, num_classes=None, margin: float = 0.2, mining: str = "batch_hard",
                 distance: str = "cosine", embed_dim: int = 128):
        super().__init__(encoder, feature_dim=feature_dim, num_classes=num_classes)
        self.head = ProjectionHead(feature_dim, out_dim=embed_dim, num_layers=1)
        triplet(torch.randn(4, 2), torch.tensor([0, 0, 1, 1]), margin=margin, mining=mining, distance=distance)
        self.margin, self.mining, self.distance = margin, mining, distance   # validated by the call above

    def forward(self, batch):
        v = batch["views"]                                                 # (B, V, C, H, W)
        b, nv = v.shape[:2]
        z = F.normalize(self.encode_views(v, lambda x: self.head(self.encoder(x))), dim=-1)   # (B, V, E)
        labels = batch.get("labels")
        ids = (labels if labels is not None else torch.arange(b, device=z.device)).repeat_interleave(nv)
        return StepOutput(triplet(z.flatten(0, 1), ids, margin=self.margin, mining=self.mining,
                                  distance=self.distance))
