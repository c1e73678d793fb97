"""Every loss as a pure function of tensors (the maths lives in the topic modules beside this one)."""

from .clip import clip_loss, logistic
from .geometry import alignment, uniformity
from .infonce import debiased_info_nce, info_nce, nt_xent, supcon
from .metric import margin_contrastive, n_pair, triplet

__all__ = ["info_nce", "debiased_info_nce", "nt_xent", "supcon", "triplet", "n_pair", "margin_contrastive",
           "logistic", "clip_loss", "alignment", "uniformity"]
