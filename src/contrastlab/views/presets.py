"""Named augmentation recipes, each scalable by one ``strength`` knob.

* ``"simclr"``: the paper's full ImageNet recipe for RGB (Chen et al. 2020, appendix A): crop scale
  (0.08, 1), aspect (3/4, 4/3), flip 0.5, colour jitter (0.8, 0.8, 0.8, 0.2) with p = 0.8 in random
  order, grayscale p = 0.2, blur p = 0.5 with sigma in (0.1, 2.0) and a kernel 10% of the side.
* ``"fashion-mnist"`` (alias ``"gray"``): 1-channel 28x28 clothes. No saturation, hue or grayscale (there is
  no colour); crop scale (0.3, 1) since a 0.08 crop of 28 px (~8x8) loses the garment; flips kept (clothes
  are nearly mirror-symmetric); jitter (0.4, 0.4) with p = 0.8; blur p = 0.5 with sigma in (0.1, 1.0): the
  10% rule gives a 3-tap kernel at 28 px, where sigma above ~1 only flattens the taps towards a box
  (0.27/0.45/0.27 at 1.0, 0.32/0.36/0.32 at 2.0), so the weaker range keeps the mild end of the effect.
* ``"digits"``: 8x8 scikit-learn digits (values 0..16: pass ``images / 16``). A mild crop (scale
  (0.7, 1), aspect (4/5, 5/4)) since each pixel matters, no flip (digits are not mirror-symmetric: 2 vs
  5, 3 vs E), no blur (a 10% kernel at 8 px is one tap), mild jitter (0.3, 0.3) with p = 0.8.
* ``"simclr-cifar"``: SimCLR's CIFAR-10 recipe (Chen et al. 2020, appendix B.9): as ``"simclr"`` with colour
  strength s = 0.5, i.e. jitter (0.4, 0.4, 0.4, 0.1) still with p = 0.8 and grayscale p = 0.2, and no blur
  ("we remove Gaussian blur" at 32 px). Not ``preset("simclr", strength=0.5)``, which also halves the
  probabilities and narrows the crop.
* ``"mocov2"``: MoCo v2 (Chen et al. 2020b, "Improved Baselines with Momentum Contrastive Learning"): crop scale
  (0.2, 1), flip 0.5, jitter (0.4, 0.4, 0.4, 0.1) with p = 0.8, grayscale p = 0.2, blur p = 0.5 with sigma in
  (0.1, 2.0); the blur kernel is this module's 10% of the side (MoCo's PIL blur has no kernel size).
* ``"mocov2-cifar"``: ``"mocov2"`` without the blur, for 32 px images (a 10% kernel is 3 taps there), as
  ``"simclr-cifar"`` drops SimCLR's.
* ``"none"``: identity, only the conversion to float.

``strength`` s in [0, 2] multiplies the jitter amounts (hue capped at 0.5), the probabilities (capped
at 1) and each crop scale bound's distance from 1 (the lower bound floored at min(0.05, its preset
value)). s = 0 is the identity exactly; s = 1 the preset as listed.

Example::

    >>> from contrastlab.views import list_presets, preset
    >>> list_presets()
    ['digits', 'fashion-mnist', 'gray', 'mocov2', 'mocov2-cifar', 'none', 'simclr', 'simclr-cifar']
    >>> preset("simclr", strength=0.5).hyperparameters["brightness"]
    0.4
    >>> preset("fashion-mnist", strength=0.0).hyperparameters["crop_scale"]
    (1.0, 1.0)
"""

from __future__ import annotations

from . import validation as check
from .augment import Augment

__all__ = ["PRESETS", "register_preset", "list_presets", "preset", "scale_strength"]

#: name -> the full set of :class:`Augment` hyperparameters (all but ``size``) at strength 1.
PRESETS: dict[str, dict] = {}

_OFF = dict(crop_scale=(1.0, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_p=0.0, jitter_p=0.0, brightness=0.0,
            contrast=0.0, saturation=0.0, hue=0.0, grayscale_p=0.0, blur_p=0.0, blur_sigma=(0.1, 2.0))
_PROBABILITIES = ("flip_p", "jitter_p", "grayscale_p", "blur_p")


def register_preset(*names: str, **hyperparameters) -> dict:
    """Register a recipe under one or more names; unnamed hyperparameters are off (see ``_OFF``).

    Example::

        >>> spec = register_preset("flip-only", flip_p=0.5)
        >>> "flip-only" in list_presets()
        True
        >>> del PRESETS["flip-only"]                                         # keep the registry as shipped
    """
    unknown = set(hyperparameters) - set(_OFF)
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)}; expected some of {sorted(_OFF)}")
    spec = {**_OFF, **hyperparameters}
    Augment(**spec)                                                   # validate once, at registration
    for name in names:
        if name in PRESETS:
            raise ValueError(f"a preset named {name!r} is already registered")
        PRESETS[name] = spec
    return spec


register_preset("simclr", crop_scale=(0.08, 1.0), flip_p=0.5, jitter_p=0.8, brightness=0.8, contrast=0.8,
                saturation=0.8, hue=0.2, grayscale_p=0.2, blur_p=0.5, blur_sigma=(0.1, 2.0))
register_preset("fashion-mnist", "gray", crop_scale=(0.3, 1.0), flip_p=0.5, jitter_p=0.8, brightness=0.4,
                contrast=0.4, blur_p=0.5, blur_sigma=(0.1, 1.0))
register_preset("digits", crop_scale=(0.7, 1.0), crop_ratio=(4 / 5, 5 / 4), jitter_p=0.8, brightness=0.3,
                contrast=0.3)
register_preset("simclr-cifar", crop_scale=(0.08, 1.0), flip_p=0.5, jitter_p=0.8, brightness=0.4, contrast=0.4,
                saturation=0.4, hue=0.1, grayscale_p=0.2)
register_preset("mocov2", crop_scale=(0.2, 1.0), flip_p=0.5, jitter_p=0.8, brightness=0.4, contrast=0.4,
                saturation=0.4, hue=0.1, grayscale_p=0.2, blur_p=0.5, blur_sigma=(0.1, 2.0))
register_preset("mocov2-cifar", crop_scale=(0.2, 1.0), flip_p=0.5, jitter_p=0.8, brightness=0.4, contrast=0.4,
                saturation=0.4, hue=0.1, grayscale_p=0.2)
register_preset("none")


def list_presets() -> list[str]:
    return sorted(PRESETS)


def scale_strength(hyperparameters: dict, strength: float) -> dict:
    """Scale a recipe by ``strength`` in [0, 2] (see the module docstring); returns a new dict.

    Example::

        >>> hp = scale_strength(PRESETS["fashion-mnist"], 0.5)
        >>> hp["brightness"], hp["jitter_p"], [round(v, 6) for v in hp["crop_scale"]]
        (0.2, 0.4, [0.65, 1.0])
    """
    s = check.in_range("strength", strength, 0.0, 2.0)
    out = dict(hyperparameters)
    lo, hi = hyperparameters["crop_scale"]

    def toward_one(v):                                    # 1 - s (1 - v), exact at s = 0 and s = 1
        return 1.0 if s == 0 else v + (1.0 - s) * (1.0 - v)

    lo_s = max(toward_one(lo), min(lo, 0.05))
    out["crop_scale"] = (lo_s, max(toward_one(hi), lo_s))
    for name in _PROBABILITIES:
        out[name] = min(1.0, hyperparameters[name] * s)
    for name in ("brightness", "contrast", "saturation"):
        out[name] = hyperparameters[name] * s
    out["hue"] = min(0.5, hyperparameters["hue"] * s)
    return out


def preset(name: str, *, strength: float = 1.0, size=None) -> Augment:
    """Build the :class:`Augment` of a registered recipe, scaled by ``strength``, resizing to ``size``.

    Example::

        >>> import torch
        >>> augment = preset("fashion-mnist", strength=1.5)
        >>> augment(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)).shape
        torch.Size([2, 1, 28, 28])
    """
    if name not in PRESETS:
        raise ValueError(f"`name` must be one of {list_presets()}, got {name!r}")
    return Augment(size=size, **scale_strength(PRESETS[name], strength))
