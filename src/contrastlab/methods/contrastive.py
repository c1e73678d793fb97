"""SimCLR, SupCon and multi-instance (MICLe) training: encoder -> projection head -> a softmax contrastive loss.

Under several processes each rank's views are contrasted with every rank's (``losses.distributed``); in one
process the losses are exactly :func:`~contrastlab.losses.nt_xent` and :func:`~contrastlab.losses.supcon`.

>>> import torch
>>> from contrastlab.models import create_encoder
>>> enc = create_encoder("small_cnn", in_channels=1)
>>> m = SimCLR(enc, feature_dim=enc.out_dim)
>>> out = m({"views": torch.rand(8, 2, 1, 28, 28)})
>>> out.loss.ndim
0
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses.distributed import global_nt_xent, global_supcon
from ..losses.geometry import alignment
from ..models import ProjectionHead
from .base import Method, StepOutput, positive_number, register_method, warn_single_class

__all__ = ["SimCLR", "SupCon", "MultiInstance"]


class _Projected(Method):
    def __init__(self, encoder, *, feature_dim, num_classes=None, proj_hidden_dim=512, proj_dim=128,
                 proj_layers=2):
        super().__init__(encoder, feature_dim=feature_dim, num_classes=num_classes)
        self.head = ProjectionHead(feature_dim, hidden_dim=proj_hidden_dim, out_dim=proj_dim, num_layers=proj_layers)

    def project(self, views):  # (B, V, C, H, W) -> (B, V, P), L2-normalised
        return F.normalize(self.encode_views(views, lambda x: self.head(self.encoder(x))), dim=-1)

    def embeddings(self, batch):
        return (self.project(batch["views"]),)                             # ((B, V, P),)

    def forward(self, batch):
        return self.loss_from(self.embeddings(batch), batch)


def _temperature(t):
    return positive_number("temperature", t)


@register_method("simclr")
class SimCLR(_Projected):
    """SimCLR (Chen et al. 2020): two views per image, NT-Xent over the 2B views of the batch. The default
    temperature 0.5 is the paper's choice for CIFAR-10 (appendix B.9). Trains on images and, unchanged, on series
    (two views from :mod:`contrastlab.views.series`)."""
    modalities = ("image", "sequence")

    def __init__(self, encoder, *, feature_dim, num_classes=None, temperature: float = 0.5,
                 proj_hidden_dim: int = 512, proj_dim: int = 128, proj_layers: int = 2):
        super().__init__(encoder, feature_dim=feature_dim, num_classes=num_classes, proj_hidden_dim=proj_hidden_dim,
                         proj_dim=proj_dim, proj_layers=proj_layers)
        self.temperature = _temperature(temperature)

    def loss_from(self, embeddings, batch):
        z, = embeddings                                                    # (B, 2, P)
        loss = global_nt_xent(z[:, 0], z[:, 1], temperature=self.temperature)
        return StepOutput(loss, {"alignment": float(alignment(z[:, 0].detach(), z[:, 1].detach()))})


@register_method("supcon")
class SupCon(_Projected):
    """Supervised contrastive learning (Khosla et al. 2020, L_out): every same-label view is a positive. Trains on
    images and, unchanged, on labelled series."""
    modalities = ("image", "sequence")
    needs_labels = True

    def __init__(self, encoder, *, feature_dim, num_classes=None, temperature: float = 0.1,
                 proj_hidden_dim: int = 512, proj_dim: int = 128, proj_layers: int = 2):
        super().__init__(encoder, feature_dim=feature_dim, num_classes=num_classes, proj_hidden_dim=proj_hidden_dim,
                         proj_dim=proj_dim, proj_layers=proj_layers)
        self.temperature = _temperature(temperature)

    def check_data(self, data) -> None:
        super().check_data(data)
        warn_single_class(self.name, data.y)

    def loss_from(self, embeddings, batch):
        z, = embeddings                                                    # (B, V, P)
        return StepOutput(global_supcon(z, batch["labels"], temperature=self.temperature))


@register_method("multi_instance")
class MultiInstance(_Projected):
    """Multi-instance positives (MICLe, Azizi et al. 2021): the second view of each image is drawn from a
    *different* image of the same group (e.g. another scan of the same patient), and every view of the same group
    in the batch is a positive (SupCon on group ids), so group-mates are never pushed apart as negatives."""
    needs_groups = True

    def __init__(self, encoder, *, feature_dim, num_classes=None, temperature: float = 0.2,
                 proj_hidden_dim: int = 512, proj_dim: int = 128, proj_layers: int = 2):
        super().__init__(encoder, feature_dim=feature_dim, num_classes=num_classes, proj_hidden_dim=proj_hidden_dim,
                         proj_dim=proj_dim, proj_layers=proj_layers)
        self.temperature = _temperature(temperature)
        self._members: tuple | None = None

    def _partners(self, group: torch.Tensor, idx: torch.Tensor, generator) -> torch.Tensor:
        """For each index, a uniformly drawn *other* member of its group (itself when the group has one image)."""
        if self._members is None or self._members[0] is not group:
            rank = torch.unique(group, return_inverse=True)[1]             # (N,) dense group ids
            order = torch.argsort(rank, stable=True)                        # images sorted by group
            counts = torch.bincount(rank)
            starts = torch.cumsum(counts, 0) - counts
            own = torch.empty_like(rank)
            own[order] = torch.arange(len(order)) - starts[rank[order]]    # position inside its group
            self._members = (group, rank, order, counts, starts, own)
        _, rank, order, counts, starts, own = self._members
        r, n = rank[idx], counts[rank[idx]]
        off = 1 + (torch.rand(len(idx), generator=generator) * (n - 1)).long().clamp(max=(n - 2).clamp(min=0))
        pick = torch.where(n > 1, (own[idx] + off) % n, own[idx])
        return order[starts[r] + pick]

    def check_data(self, data) -> None:
        super().check_data(data)
        warn_single_class(self.name, data.group, "groups")

    def make_batch(self, data, idx, augment, generator):
        from ..views import make_views
        partner = self._partners(data.group, idx, generator)
        a = make_views(data.x[idx], augment, n_views=1, generator=generator)
        b = make_views(data.x[partner], augment, n_views=1, generator=generator)
        batch = {"views": torch.cat([a, b], 1), "index": idx, "group": data.group[idx]}
        if data.y is not None:
            batch["labels"] = data.y[idx]
        return batch

    def loss_from(self, embeddings, batch):
        z, = embeddings                                                    # (B, 2, P)
        return StepOutput(global_supcon(z, batch["group"], temperature=self.temperature))
