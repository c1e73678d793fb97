"""MoCo v2 (He et al. 2020; Chen et al. 2020, "Improved Baselines with Momentum Contrastive Learning").

Queries come from the encoder, keys from its momentum copy; negatives are a FIFO queue of past keys that is
part of the model's state (saved in every checkpoint). Shuffled batch norm is emulated in one process: the keys
are encoded in `shuffle_splits` random chunks, so a query and its key never share batch statistics. Under several
processes the queue is filled with the keys of every rank (gathered, in rank order), so all ranks hold the same
queue; the shuffle stays within each rank's batch.

>>> import torch
>>> from contrastlab.models import create_encoder
>>> enc = create_encoder("small_cnn", in_channels=1)
>>> m = MoCo(enc, feature_dim=enc.out_dim, queue_size=64)
>>> m({"views": torch.rand(8, 2, 1, 28, 28)}).loss.ndim
0
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed as dist
from ..losses import info_nce
from ..losses.distributed import global_info_nce
from ..models import MomentumEncoder, NegativeQueue, ProjectionHead, cosine_momentum
from .base import Method, StepOutput, register_method
from .contrastive import _temperature

__all__ = ["MoCo"]


@register_method("moco")
class MoCo(Method):
    def __init__(self, encoder, *, feature_dim, num_classes=None, temperature: float = 0.2,
                 queue_size: int = 16384, momentum: float = 0.99, momentum_schedule: bool = False,
                 symmetric: bool = False, shuffle_splits: int = 8, proj_hidden_dim: int = 512, proj_dim: int = 128,
                 proj_layers: int = 2):
        super().__init__(encoder, feature_dim=feature_dim, num_classes=num_classes)
        self.temperature = _temperature(temperature)
        if not isinstance(shuffle_splits, int) or shuffle_splits < 1:
            raise ValueError(f"`shuffle_splits` must be a positive int, got {shuffle_splits!r}")
        self.symmetric, self.shuffle_splits = bool(symmetric), shuffle_splits
        self.base_momentum, self.momentum_schedule = momentum, bool(momentum_schedule)
        self.head = ProjectionHead(feature_dim, hidden_dim=proj_hidden_dim, out_dim=proj_dim, num_layers=proj_layers)
        self.key_net = MomentumEncoder(nn.Sequential(encoder, self.head), momentum=momentum)
        self.queue = NegativeQueue(size=queue_size, dim=self.head.out_dim)
        self._shuffle_gen: torch.Generator | None = None

    def make_batch(self, data, idx, augment, generator):
        batch = super().make_batch(data, idx, augment, generator)
        batch["shuffle"] = torch.randperm(len(idx), generator=generator)   # key-encoder batch-norm shuffle
        return batch

    def _keys(self, x, perm):  # (B, C, H, W) -> (B, P); BN statistics from random chunks, not the query's batch
        if perm is None:
            perm = torch.randperm(x.shape[0])
        splits = min(self.shuffle_splits, max(1, x.shape[0] // 2))        # at least 2 samples per BN chunk
        chunks = [self.key_net(x[c]) for c in perm.to(x.device).tensor_split(splits)]
        k = torch.empty(x.shape[0], chunks[0].shape[1], device=x.device, dtype=chunks[0].dtype)
        k[perm.to(x.device)] = torch.cat(chunks)
        return F.normalize(k, dim=-1)

    def _loss(self, q, k):
        if not len(self.queue):                                          # empty queue: every rank's keys
            return global_info_nce(q, k, temperature=self.temperature)
        return info_nce(q, k, self.queue.negatives(), temperature=self.temperature)

    def forward(self, batch):
        v = batch["views"]                                                 # (B, 2, C, H, W)
        perm = batch.get("shuffle")
        q1 = F.normalize(self.head(self.encoder(v[:, 0])), dim=-1)         # (B, P)
        k2 = self._keys(v[:, 1], perm)
        if self.symmetric:
            q2 = F.normalize(self.head(self.encoder(v[:, 1])), dim=-1)
            k1 = self._keys(v[:, 0], perm)
            loss = (self._loss(q1, k2) + self._loss(q2, k1)) / 2
            new_keys = torch.cat([dist.gather_no_grad(k2), dist.gather_no_grad(k1)])
        else:
            loss = self._loss(q1, k2)
            new_keys = dist.gather_no_grad(k2)                             # (N, P) every rank's keys
        self.queue.enqueue(new_keys)
        return StepOutput(loss, {"queue": float(len(self.queue))})

    def after_step(self, *, step, total_steps):
        m = (cosine_momentum(step, total_steps, base=self.base_momentum) if self.momentum_schedule
             else self.base_momentum)
        self.key_net.update(nn.Sequential(self.encoder, self.head), momentum=m)
