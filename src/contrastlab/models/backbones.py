"""Image encoders from other libraries, behind the encoder interface ((B, C, H, W) float in [0, 1] -> (B, F),
an int `out_dim`): ``"hf:PATH"``, a local Hugging Face `transformers` vision model folder (ResNet, ViT, ConvNeXt,
DINOv2, ...; its pooled output), and ``"timm:NAME"``, a `timm` architecture built without weights. Both are
registered in `IMAGE_ENCODER_LOADERS`, so every image method takes them as ``encoder=hf:PATH`` / ``timm:NAME``.
Nothing here downloads: Hugging Face folders load with ``local_files_only=True``; weights for a timm model come
from ``pretrained=FILE`` (see `contrastlab.models.pretrained`).

>>> create_encoder("hf:/no/such/model", in_channels=3)  # doctest: +ELLIPSIS
Traceback (most recent call last):
FileNotFoundError: `encoder` 'hf:PATH' must name a local Hugging Face model folder containing config.json, ...
"""
from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from .encoders import Standardize, _check_channels, create_encoder, register_encoder_loader  # noqa: F401

__all__ = ["HFImageEncoder", "TimmEncoder", "HF_WEIGHT_FILES"]

# what `save_pretrained` writes: one file, or shards listed by an index
HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                   "pytorch_model.bin.index.json")


def _hf_folder(path) -> Path:
    p = Path(os.fspath(path)).expanduser() if path else None
    if p is None or not p.is_dir() or not (p / "config.json").is_file():
        raise FileNotFoundError(f"`encoder` 'hf:PATH' must name a local Hugging Face model folder containing "
                                f"config.json, got {str(p) if p else 'no path'!r} (contrastlab loads models from "
                                f"disk only; write one there with save_pretrained)")
    if not any((p / f).is_file() for f in HF_WEIGHT_FILES):
        raise FileNotFoundError(f"Hugging Face model folder {str(p)!r} has no weights: it holds none of "
                                f"{', '.join(HF_WEIGHT_FILES)} (save the model itself there with save_pretrained, "
                                f"not only its config)")
    return p


def _preprocessor_stats(folder: Path, channels: int) -> tuple[list[float], list[float]] | None:
    """image_mean / image_std of the folder's preprocessor_config.json, per channel; (0, 1) when it says
    do_normalize=false; None when there is no such file or it gives no statistics."""
    file = folder / "preprocessor_config.json"
    if not file.is_file():
        return None
    try:
        cfg = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{str(file)!r} is not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{str(file)!r} must hold a JSON object, got {type(cfg).__name__}")
    if cfg.get("do_normalize", True) is False:
        return [0.0] * channels, [1.0] * channels
    if cfg.get("image_mean") is None or cfg.get("image_std") is None:
        return None
    stats = []
    for key in ("image_mean", "image_std"):
        v = cfg[key]
        v = [v] * channels if isinstance(v, (int, float)) else v
        if (not isinstance(v, list) or len(v) != channels
                or not all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in v)):
            raise ValueError(f"{str(file)!r}: `{key}` must be {channels} numbers (one per channel of the model), "
                             f"got {cfg[key]!r}")
        stats.append([float(e) for e in v])
    if min(stats[1]) <= 0:
        raise ValueError(f"{str(file)!r}: `image_std` must be > 0 for every channel, got {cfg['image_std']!r}")
    return stats[0], stats[1]


class HFImageEncoder(nn.Module):
    """A local Hugging Face `transformers` vision model (``AutoModel``, ``local_files_only=True``, float32) whose
    pooled output (``pooler_output``, flattened to (B, F)) is the feature; trainable like any module.

    The input is standardised with the folder's preprocessor_config.json ``image_mean`` / ``image_std`` when it
    has them (the statistics the model was trained with), else with the data's ``mean`` / ``std``. Gray images
    (``in_channels=1``) into an RGB model are repeated to its ``num_channels``. Models whose forward takes
    ``interpolate_pos_encoding`` (ViT) get it, so they run at image sizes other than their config's.
    ``out_dim`` is measured with one forward pass at the config's ``image_size`` (224 when it has none).

    Shape: (B, in_channels, H, W) float in [0, 1] -> (B, out_dim).
    """

    def __init__(self, path: str | os.PathLike, *, in_channels: int = 3, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None):
        super().__init__()
        _check_channels(in_channels, mean, std)
        folder = _hf_folder(path)
        try:
            from transformers import AutoModel
        except ImportError as e:
            raise ImportError(f"`encoder` 'hf:{path}' needs the `transformers` package, which cannot be imported "
                              f"here ({type(e).__name__}: {e}); pip install transformers") from None
        try:
            model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        except Exception as e:            # an unknown model type, corrupt weights (SafetensorError), ...
            if isinstance(e, MemoryError):
                raise
            first = str(e).splitlines()[0] if str(e) else ""
            raise ValueError(f"{str(folder)!r} is not a Hugging Face model `transformers` can load (an unknown "
                             f"model type, or corrupt weights): {type(e).__name__}: {first}") from None
        if getattr(model, "main_input_name", None) != "pixel_values":
            kind = getattr(model.config, "model_type", type(model).__name__)
            raise ValueError(f"{str(folder)!r} holds a {kind!r} model, not a vision model: it takes "
                             f"{getattr(model, 'main_input_name', '?')!r}, not pixel_values (image encoders: "
                             f"ResNet, ViT, ConvNeXt, DINOv2, ... folders)")
        channels = int(getattr(model.config, "num_channels", 3))
        if in_channels != channels and in_channels != 1:
            raise ValueError(f"`in_channels` must be {channels} (the model's num_channels) or 1 (gray images, "
                             f"repeated), got {in_channels} for {str(folder)!r}")
        self.model = model.float()
        self.repeat = channels // in_channels if in_channels != channels else 1
        stats = _preprocessor_stats(folder, channels)
        if stats is None:                   # the data's statistics, repeated with the channels
            mean, std = list(mean or [0.5] * in_channels), list(std or [0.25] * in_channels)
            stats = (mean * self.repeat, std * self.repeat)
        self.standardize = Standardize(*stats)
        self.path, self.in_channels = str(folder), in_channels
        self._model_kwargs = ({"interpolate_pos_encoding": True}
                              if "interpolate_pos_encoding" in inspect.signature(model.forward).parameters else {})
        size = getattr(model.config, "image_size", 224)
        size = tuple(size) if isinstance(size, (list, tuple)) else (int(size), int(size))
        self.eval()
        with torch.no_grad():
            self.out_dim = int(self(torch.zeros(1, in_channels, *size)).shape[1])
        self.train()

    def forward(self, x):  # (B, in_channels, H, W) in [0, 1] -> (B, out_dim)
        if self.repeat > 1:
            x = x.repeat(1, self.repeat, 1, 1)                            # (B, num_channels, H, W)
        out = self.model(pixel_values=self.standardize(x), **self._model_kwargs)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            raise ValueError(f"the Hugging Face model in {self.path!r} ({type(self.model).__name__}) returns no "
                             f"pooled output (pooler_output is None); use a model with a pooler")
        return pooled.flatten(1)                                          # (B, F): ResNet pools to (B, F, 1, 1)


def _import_timm(name: str):
    try:
        import timm
    except ImportError as e:
        raise ImportError(f"`encoder` 'timm:{name}' needs the `timm` package, which cannot be imported here "
                          f"({type(e).__name__}: {e}). timm imports torchvision when it starts, so it needs both "
                          f"installed (a torchvision built for this torch); or use an 'hf:PATH' folder or one of "
                          f"the built-in encoders") from None
    return timm


class TimmEncoder(nn.Module):
    """A `timm` architecture, ``timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_channels,
    **options)``: its pooled features (``num_features``), after standardising with the data's ``mean`` /
    ``std``. No weights are downloaded; give them with ``pretrained=FILE``.

    Shape: (B, in_channels, H, W) float in [0, 1] -> (B, num_features).
    """

    def __init__(self, name: str, *, in_channels: int = 3, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, **options):
        super().__init__()
        _check_channels(in_channels, mean, std)
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"`encoder` 'timm:NAME' needs a timm model name, got {name!r}")
        timm = _import_timm(name)
        self.standardize = Standardize(mean or [0.5] * in_channels, std or [0.25] * in_channels)
        self.model = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_channels, **options)
        features = getattr(self.model, "num_features", None)
        if isinstance(features, bool) or not isinstance(features, int) or features < 1:
            raise ValueError(f"timm model {name!r} has no positive int `num_features`, got {features!r}")
        self.name, self.out_dim = name, features

    def forward(self, x):  # (B, C, H, W) in [0, 1] -> (B, num_features)
        return self.model(self.standardize(x)).flatten(1)


@register_encoder_loader("hf")
def _hf(argument: str, **kwargs) -> nn.Module:
    return HFImageEncoder(argument, **kwargs)


@register_encoder_loader("timm")
def _timm(argument: str, **kwargs) -> nn.Module:
    return TimmEncoder(argument, **kwargs)
