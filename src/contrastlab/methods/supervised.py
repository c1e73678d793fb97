"""The supervised baseline: the same encoder, a linear classifier and cross-entropy, trained by the same trainer
on one augmented view per image, so SupCon and SimCLR are compared with it on equal terms.

>>> import torch
>>> from contrastlab.models import create_encoder
>>> enc = create_encoder("small_cnn", in_channels=1)
>>> m = Supervised(enc, feature_dim=enc.out_dim, num_classes=3)
>>> m({"views": torch.rand(8, 1, 1, 28, 28), "labels": torch.arange(8) % 3}).loss.ndim
0
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .base import Method, StepOutput, register_method

__all__ = ["Supervised"]


@register_method("supervised")
class Supervised(Method):
    n_views = 1
    needs_labels = True

    def __init__(self, encoder, *, feature_dim, num_classes=None, label_smoothing: float = 0.0):
        super().__init__(encoder, feature_dim=feature_dim, num_classes=num_classes)
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"method 'supervised' needs labelled data with at least 2 classes, got {num_classes!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"`label_smoothing` must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self.classifier = nn.Linear(feature_dim, num_classes)

    def forward(self, batch):
        logits = self.classifier(self.encoder(batch["views"][:, 0]))      # (B, K)
        y = batch["labels"]
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        return StepOutput(loss, {"train_top1": float((logits.argmax(1) == y).float().mean())})
