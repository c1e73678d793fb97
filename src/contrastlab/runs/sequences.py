"""A sequence run's method rebuilt from its directory (`REBUILDERS["sequence"]`): the encoder named in config.json's
``model`` section with the options the task built it with (``causal`` included) and its input channels, then the
method; the weights come from the checkpoint (`contrastlab.runs.load_run`). Search embedders are for image and text
runs; a sequence run's features are ``run.method.embed(x)`` for float series (B, C, T)."""
from __future__ import annotations

from ..methods import create_method
from ..models import create_encoder
from ..rundir import RunDir
from .rebuild import _need, register_rebuilder

__all__ = ["rebuild_sequence"]


@register_rebuilder("sequence")
def rebuild_sequence(config, model: dict, run: RunDir, num_classes: int | None):
    channels, fdim, name = _need(model, run, "in_channels", "feature_dim", "encoder")
    encoder = create_encoder(name, in_channels=channels, **(model.get("options") or {}))
    return create_method(config.method, encoder, feature_dim=fdim, num_classes=num_classes, **config.hyperparameters)
