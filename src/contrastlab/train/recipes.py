"""Training recipes: the papers' settings for SimCLR, MoCo v2 and SupCon at 32, 64, 96 and 224 px, by name.

A recipe is a set of :class:`TrainConfig` fields (encoder, image size, augmentation preset, batch, optimizer and
schedule) plus the method's hyperparameters; ``contrastlab train --recipe NAME`` starts from it, and every
``--set key=value`` is applied after it (a batch size set there rescales the recipe's learning rate, an ``lr``
set there replaces it). The budget (``--epochs``, ``--steps`` or ``--minutes``) is always the user's.

Example::

    >>> r = recipe("simclr-32")
    >>> r.method, r.settings["encoder"], r.settings["augment"], r.hyperparameters["temperature"]
    ('simclr', 'resnet18', 'simclr-cifar', 0.5)
    >>> cfg = build_config("simclr-32", data="digits", steps=2, batch_size=128)
    >>> cfg.optimizer, cfg.lr, cfg.weight_decay                      # LARS 0.3 x 128 / 256
    ('lars', 0.15, 1e-06)
    >>> "mocov2-224" in list_recipes()
    True

Where the recipes come from (every one says in its description what it follows and where it departs):

* SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations"): LARS with
  lr 0.3 x B / 256, weight decay 1e-6, linear warm-up then cosine decay, a 2-layer MLP head to 128 dimensions
  (hidden width = the encoder's features). At 32 px the CIFAR-10 setting (appendix B.9): colour strength 0.5,
  no blur, temperature 0.5 (``"simclr-cifar"`` preset). At 64, 96 and 224 px the ImageNet setting (appendix A):
  strength 1, blur with a kernel 10% of the side, temperature 0.1 (``"simclr"`` preset).
* MoCo v2 (Chen et al. 2020b, "Improved Baselines with Momentum Contrastive Learning"): SGD with lr 0.03 x B / 256,
  momentum 0.9, weight decay 1e-4, cosine decay without warm-up, temperature 0.2, an MLP head (2048 hidden at
  ResNet-50), crop scale (0.2, 1) and blur (``"mocov2"`` preset); at 224 px a queue of 65536 keys and encoder
  momentum 0.999. Below 224 px (data sets of ~50-100k images) the queue is 4096 and the momentum 0.99, the MoCo
  authors' CIFAR-10 demo values, since a queue larger than the data set holds stale copies of the same images;
  32 px drops the blur (``"mocov2-cifar"``), as SimCLR does for CIFAR.
* SupCon (Khosla et al. 2020, "Supervised Contrastive Learning"): SimCLR's augmentations and optimisation at each
  resolution, temperature 0.1; it needs labelled data (a folder of class subfolders, or a labelled data set).

Encoders: ``resnet18`` at 32, 64 and 96 px, ``resnet50`` at 224 px; the small-image stem (3x3 stride-1 first
convolution, no max-pool) below 64 px and the ImageNet stem (``encoder_options={"stem": "imagenet"}``: 7x7 stride-2
convolution and max-pool) from 64 px. Batches fit one GPU: 512 at 32-96 px (256 for MoCo, as its paper), 256 at 224 px, where
the papers use 4096 (SimCLR) or 256 on 8 GPUs (MoCo v2).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..methods import METHODS, list_methods, method_hyperparameters
from ..views import PRESETS, list_presets
from .config import OPTIMIZER_DEFAULTS, TrainConfig

__all__ = ["Recipe", "RECIPES", "register_recipe", "list_recipes", "recipe", "build_config"]

_NOT_SETTINGS = ("method", "data", "hyperparameters", "epochs", "steps", "minutes")
_SETTINGS = tuple(f.name for f in fields(TrainConfig) if f.name not in _NOT_SETTINGS)


@dataclass(frozen=True)
class Recipe:
    """One named recipe: ``settings`` are :class:`TrainConfig` fields, ``hyperparameters`` the method's.

    ``lr_per_256`` is the learning rate per 256 examples of the recipe's own optimizer (``settings["optimizer"]``):
    :func:`build_config` sets ``lr = lr_per_256 x batch_size / 256`` from the final batch size, and the recipe's
    ``weight_decay``, unless they are given or the optimizer is changed; likewise the recipe's ``encoder_options``
    go with its encoder only.
    """
    name: str
    method: str
    description: str
    settings: dict = field(default_factory=dict)
    hyperparameters: dict = field(default_factory=dict)
    lr_per_256: float | None = None


RECIPES: dict[str, Recipe] = {}


def register_recipe(name: str, *, method: str, description: str, hyperparameters: dict | None = None,
                    lr_per_256: float | None = None, **settings) -> Recipe:
    """Register a recipe; its settings and hyperparameters are checked against :class:`TrainConfig` and the method.

    Example::

        >>> r = register_recipe("tiny-simclr", method="simclr", description="a test", batch_size=8)
        >>> build_config("tiny-simclr", data="digits", steps=1).batch_size
        8
        >>> del RECIPES["tiny-simclr"]                                    # keep the registry as shipped
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"`name` must be a non-empty str, got {name!r}")
    if name in RECIPES:
        raise ValueError(f"a recipe named {name!r} is already registered")
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {list_methods()}, got {method!r}")
    unknown = sorted(set(settings) - set(_SETTINGS))
    if unknown:
        raise ValueError(f"recipe {name!r}: unknown setting(s) {unknown}; a recipe sets TrainConfig fields other "
                         f"than {list(_NOT_SETTINGS)} (the budget is the user's): {sorted(_SETTINGS)}")
    hyperparameters = dict(hyperparameters or {})
    known = method_hyperparameters(method)
    bad = sorted(set(hyperparameters) - set(known))
    if bad:
        raise ValueError(f"recipe {name!r}: unknown hyperparameter(s) {bad} for method {method!r}; it takes "
                         f"{sorted(known)}")
    augment = settings.get("augment", "auto")
    if augment != "auto" and augment not in PRESETS:
        raise ValueError(f"recipe {name!r}: `augment` must be 'auto' or one of {list_presets()}, got {augment!r}")
    if lr_per_256 is not None and not (isinstance(lr_per_256, (int, float)) and lr_per_256 > 0):
        raise ValueError(f"`lr_per_256` must be a number > 0 or None, got {lr_per_256!r}")
    r = Recipe(name, method, description, dict(settings), hyperparameters, lr_per_256)
    build_config(r, data="digits", steps=1)                            # validate once, at registration
    RECIPES[name] = r
    return r


def list_recipes(method: str | None = None) -> list[str]:
    """The recipe names, of one method when ``method`` is given."""
    return sorted((k for k, r in RECIPES.items() if method is None or r.method == method), key=_order)


def _order(name: str):                                                # simclr-32 before simclr-224
    stem, _, size = name.rpartition("-")
    return (stem, int(size), name) if size.isdigit() else (name, 0, name)


def recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"`recipe` must be one of {list_recipes()}, got {name!r}")
    return RECIPES[name]


def build_config(name: str | Recipe, *, data: str, method: str | None = None, hyperparameters: dict | None = None,
                 **settings) -> TrainConfig:
    """The :class:`TrainConfig` of a recipe, with ``settings`` (TrainConfig fields, the budget among them) and
    ``hyperparameters`` (the method's) applied over the recipe's. ``method``, when given, must be the recipe's."""
    r = name if isinstance(name, Recipe) else recipe(name)
    if method is not None and method != r.method:
        others = list_recipes(method)
        raise ValueError(f"recipe {r.name!r} trains {r.method!r}, not {method!r}; run `contrastlab train "
                         f"{r.method} --recipe {r.name}`" + (f", or use a {method} recipe: {others}" if others else
                                                             f" (there is no {method} recipe)"))
    merged = {**r.settings, **settings}
    own = merged.get("optimizer", "adamw") == r.settings.get("optimizer", "adamw")
    if own and r.lr_per_256 is not None and settings.get("lr") is None:
        merged["lr"] = r.lr_per_256 * merged.get("batch_size", 256) / 256
    if not own and "weight_decay" not in settings:
        merged.pop("weight_decay", None)                               # the new optimizer's own default
    if merged.get("encoder") != r.settings.get("encoder") and "encoder_options" not in settings:
        merged.pop("encoder_options", None)                            # options of the recipe's encoder only
    return TrainConfig(method=r.method, data=data, hyperparameters={**r.hyperparameters, **(hyperparameters or {})},
                       **merged)


# ------------------------------------------------------------------------------------------------ the recipes
_SIZES = (32, 64, 96, 224)


def _encoder(size: int) -> dict:
    """resnet18 below 224 px, resnet50 at 224; the small stem (3x3 stride 1, no max-pool) below 64 px, the ImageNet
    stem (7x7 stride 2 + max-pool) from 64 px."""
    return {"encoder": "resnet50" if size >= 224 else "resnet18",
            "encoder_options": {"stem": "small" if size < 64 else "imagenet"}}


def _label(size: int) -> str:
    return f"{'resnet50' if size >= 224 else 'resnet18'} ({'small' if size < 64 else 'ImageNet'} stem)"


def _head(size: int) -> dict:
    return {"proj_hidden_dim": 2048} if size >= 224 else {}         # hidden = the encoder's features (512 / 2048)


def _simclr_like(size: int) -> tuple[dict, dict]:
    """SimCLR's view preset, temperature and LARS settings at ``size``: the CIFAR-10 setting at 32 px, ImageNet's
    above."""
    cifar = size < 64
    settings = dict(**_encoder(size), image_size=size, augment="simclr-cifar" if cifar else "simclr",
                    batch_size=256 if size >= 224 else 512, optimizer="lars", weight_decay=1e-6,
                    warmup=0.02 if cifar else 0.1)
    return settings, {"temperature": 0.5 if cifar else 0.1, **_head(size)}


_LARS = OPTIMIZER_DEFAULTS["lars"][0]                                 # 0.3 per 256: SimCLR's linear scaling

for _s in _SIZES:
    _settings, _hp = _simclr_like(_s)
    _where = ("the CIFAR-10 setting (appendix B.9): colour strength 0.5, no blur, temperature 0.5"
              if _s < 64 else "the ImageNet setting (appendix A): colour strength 1, blur (kernel 10% of the side), "
                              "temperature 0.1")
    register_recipe(
        f"simclr-{_s}", method="simclr", lr_per_256=_LARS, hyperparameters=_hp, **_settings,
        description=f"SimCLR (Chen et al. 2020) at {_s} px, {_label(_s)}: {_where}; crop (0.08, 1) + flip, "
                    f"LARS lr 0.3 x B/256, wd 1e-6, warm-up {_settings['warmup']:g} then cosine. Departs: batch "
                    f"{_settings['batch_size']} (paper 4096; for small batches it found lr 0.075 x sqrt(B) better: "
                    f"--set lr=...)")
    register_recipe(
        f"supcon-{_s}", method="supcon", lr_per_256=_LARS, hyperparameters={**_hp, "temperature": 0.1},
        **_settings,
        description=f"SupCon (Khosla et al. 2020) at {_s} px, {_label(_s)}: SimCLR's augmentations "
                    f"({_settings['augment']} preset), temperature 0.1, needs labels. Departs: SimCLR's LARS "
                    f"settings (lr 0.3 x B/256, wd 1e-6), not the paper's own tuning; batch "
                    f"{_settings['batch_size']}")
    _big = _s >= 224
    register_recipe(
        f"mocov2-{_s}", method="moco", lr_per_256=0.03,
        hyperparameters={"temperature": 0.2, "queue_size": 65536 if _big else 4096,
                         "momentum": 0.999 if _big else 0.99, **_head(_s)},
        **_encoder(_s), image_size=_s, augment="mocov2-cifar" if _s < 64 else "mocov2", batch_size=256,
        optimizer="sgd", weight_decay=1e-4, optimizer_momentum=0.9, warmup=0.0,
        description=f"MoCo v2 (Chen et al. 2020b) at {_s} px, {_label(_s)}: crop (0.2, 1), jitter (0.4, 0.4, 0.4, "
                    f"0.1) p 0.8, grayscale 0.2, " + ("no blur (32 px), " if _s < 64 else "blur p 0.5, ")
                    + "SGD lr 0.03 x B/256, momentum 0.9, wd 1e-4, cosine, temperature 0.2, batch 256"
                    + (", queue 65536, momentum 0.999" if _big else ". Departs: queue 4096 and encoder momentum "
                       "0.99 (the authors' CIFAR-10 demo; 65536 exceeds such data sets)"))
del _s, _settings, _hp, _where, _big
