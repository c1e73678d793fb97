"""A run's method rebuilt from what its directory describes, without its training data.

`config.json` holds the training configuration (`train`) and the model's description (`model`: what the task's
``build`` measured on the data: the image size, channels, channel mean / std, feature dimension, the text encoder and
its tokenizer); `tokenizer.json` holds a text tower's fitted tokenizer. `REBUILDERS` maps a run's modality ("image",
"text", "image_text") to a function ``(config, model, run, num_classes) -> method`` that builds the same
architecture; the weights (channel statistics included) then come from the checkpoint (`contrastlab.runs.load_run`).
Initial weights are drawn under a forked RNG, so loading a run leaves no trace in torch's global generator.
"""
from __future__ import annotations

from typing import Callable

from ..methods import TwoTowers, create_method, method_hyperparameters
from ..models import FrozenEncoder, create_encoder
from ..models.text import TextTokenizer, create_text_encoder
from ..models.text.external import TEXT_ENCODER_LOADERS, load_text_encoder_from
from ..rundir import RunDir
from ..text.embedder import text_encoder_from_config
from ..train.model_folder import rebuild_external_encoder

__all__ = ["REBUILDERS", "register_rebuilder", "RunIncomplete"]

REBUILDERS: dict[str, Callable] = {}


class RunIncomplete(ValueError):
    """The run directory lacks what its model needs to be rebuilt (an older or damaged run)."""


def register_rebuilder(modality: str):
    def deco(fn):
        REBUILDERS[modality] = fn
        return fn
    return deco


def _need(model: dict, run: RunDir, *keys: str) -> list:
    missing = [k for k in keys if model.get(k) is None]
    if missing:
        raise RunIncomplete(f"{run.config_file} does not describe the model ({', '.join(missing)} missing from "
                            f"'model'): it was written by an older contrastlab; re-train the run to load it")
    return [model[k] for k in keys]


def _tokenizer(model: dict, run: RunDir) -> TextTokenizer | None:
    """The run's fitted tokenizer, or None when the text encoder brings its own ("the model's own")."""
    if not isinstance(model.get("tokenizer"), dict):
        return None
    if not run.tokenizer_file.is_file():
        raise RunIncomplete(f"{run.path} is incomplete: {run.tokenizer_file.name} is missing (the text tower's "
                            f"tokenizer)")
    return TextTokenizer.from_json(run.tokenizer_file.read_text(encoding="utf-8"))


@register_rebuilder("image")
def rebuild_image(config, model: dict, run: RunDir, num_classes: int | None):
    channels, mean, std, fdim = _need(model, run, "in_channels", "mean", "std", "feature_dim")
    name = model.get("encoder") or ("small_cnn" if config.encoder == "auto" else config.encoder)
    encoder = create_encoder(name, in_channels=channels, mean=mean, std=std, **config.encoder_options)
    if config.freeze_encoder:
        encoder = FrozenEncoder(encoder)
    return create_method(config.method, encoder, feature_dim=fdim, num_classes=num_classes, **config.hyperparameters)


@register_rebuilder("text")
def rebuild_text(config, model: dict, run: RunDir, num_classes: int | None):
    own = config.encoder.partition(":")[0] not in TEXT_ENCODER_LOADERS
    tok = _tokenizer(model, run) if own else None
    if own and tok is None:
        raise RunIncomplete(f"{run.config_file} names no tokenizer for the run's {config.encoder!r} encoder; "
                            f"re-train the run to load it")
    encoder = (text_encoder_from_config(config, tokenizer=tok) if own
               else rebuild_external_encoder(config, model, run.path))    # RUN/model when the run keeps it
    return create_method(config.method, encoder, feature_dim=encoder.out_dim, num_classes=num_classes,
                         **config.hyperparameters)


@register_rebuilder("image_text")
def rebuild_image_text(config, model: dict, run: RunDir, num_classes: int | None):
    mean, std, fdim = _need(model, run, "mean", "std", "feature_dim")
    hp = {**method_hyperparameters(config.method), **config.hyperparameters}
    text_name = model.get("text_encoder") or hp.get("text_encoder", "bag")
    name = model.get("encoder") or ("small_cnn" if config.encoder == "auto" else config.encoder)
    image = create_encoder(name, in_channels=3, mean=mean, std=std, **config.encoder_options)
    if text_name.partition(":")[0] in TEXT_ENCODER_LOADERS:
        text = load_text_encoder_from(text_name, trainable=hp.get("lock") != "text")
    else:
        tok = _tokenizer(model, run)
        if tok is None:
            raise RunIncomplete(f"{run.config_file} names no tokenizer for the text tower {text_name!r}; re-train "
                                f"the run to load it")
        text = create_text_encoder(text_name, tokenizer=tok)
    return create_method(config.method, TwoTowers(image, text), feature_dim=fdim, num_classes=num_classes,
                         **config.hyperparameters)
