"""Contrastive and metric-learning losses: pure functions, thin modules, one registry.

Example::

    >>> import torch
    >>> from contrastlab.losses import nt_xent
    >>> z_a, z_b = torch.randn(256, 128), torch.randn(256, 128)
    >>> loss = nt_xent(z_a, z_b, temperature=0.5)
"""

from .clip import LearnableTemperature, clip_loss, logistic
from .functional import (alignment, debiased_info_nce, info_nce, margin_contrastive, n_pair, nt_xent, supcon,
                         triplet, uniformity)
from .lse import tiled_lse
from .ranking import multiple_negatives_ranking
from .metric import DISTANCES, MINERS, pairwise_distance
from .modules import (CLIPLoss, MultipleNegativesRanking, DebiasedInfoNCE, InfoNCE, Logistic, MarginContrastive, NPair, NTXent, SupCon,
                      Triplet)
from .registry import LOSSES, LossSpec, create_loss, list_losses, register

__all__ = [
    "info_nce", "debiased_info_nce", "nt_xent", "supcon", "triplet", "n_pair", "margin_contrastive", "logistic",
    "clip_loss", "multiple_negatives_ranking", "alignment", "uniformity", "tiled_lse", "pairwise_distance", "DISTANCES", "MINERS",
    "InfoNCE", "DebiasedInfoNCE", "NTXent", "SupCon", "Triplet", "NPair", "MarginContrastive", "Logistic",
    "CLIPLoss", "MultipleNegativesRanking", "LearnableTemperature", "LOSSES", "LossSpec", "create_loss", "list_losses", "register",
]
from .distributed import global_clip_loss, global_info_nce, global_nt_xent, global_supcon
from .rows import clip_loss_rows, info_nce_rows, nt_xent_rows, supcon_rows

__all__ += ["global_nt_xent", "global_supcon", "global_info_nce", "global_clip_loss", "nt_xent_rows", "supcon_rows",
            "info_nce_rows", "clip_loss_rows"]
