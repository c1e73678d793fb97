"""The base of every task (see `contrastlab.train.tasks`): the registry by modality (`TASKS`, `register_task`), the
`_Task` interface and its default evaluation features, and the guard that turns a build too large for memory into
a clear error. A module of its own so that tasks defined elsewhere (`sequence_task`) build on it without importing
`tasks` (which registers them).
"""
from __future__ import annotations

import functools

from torch import nn

__all__ = ["TASKS", "register_task"]

TASKS: dict[str, type] = {}


def _fits_in_memory(build):
    """A task's `build`, where a failed allocation (a size setting far too large for memory: `queue_size`,
    `proj_dim`, an encoder's width) is a clear ValueError instead of the allocator's traceback."""
    @functools.wraps(build)
    def checked(config, data, run_dir):
        try:
            return build(config, data, run_dir)
        except (RuntimeError, MemoryError) as e:
            if not isinstance(e, MemoryError) and "allocate" not in str(e):
                raise
            import re

            from ..data.limits import format_bytes
            sizes = {**config.encoder_options, **config.hyperparameters}
            asked = re.search(r"allocate (\d+) bytes", str(e))
            why = (f"one tensor alone needs {format_bytes(int(asked.group(1)))}" if asked
                   else str(e).splitlines()[0][:160])
            raise ValueError(f"method {config.method!r} with {sizes or 'its default sizes'} does not fit in memory "
                             f"({why}); lower its size settings (queue_size, proj_dim, proj_hidden_dim, embed_dim, "
                             f"...)") from None
    return checked


def _start_encoder(encoder: nn.Module, config) -> nn.Module:
    """The encoder a run starts from: ``config.pretrained``'s weights loaded (a resumed run's then come from its
    checkpoint), then wrapped frozen when ``config.freeze_encoder`` (before the method is built, so a momentum copy
    is frozen too)."""
    from ..models import FrozenEncoder, load_pretrained
    if config.pretrained is not None:
        load_pretrained(encoder, config.pretrained)
    return FrozenEncoder(encoder) if config.freeze_encoder else encoder


def register_task(modality: str):
    def deco(cls):
        cls.modality = modality
        TASKS[modality] = cls
        return cls
    return deco


class _Task:
    modality = "?"

    def __init__(self, trainer):
        self.trainer = trainer
        self._probe = None

    def default_augment(self):
        return None

    @staticmethod
    def prepare(config, data, *, first_stage=None):
        """Data preparation before the model is built (text: hard-negative mining by `first_stage`, an embedder
        the caller built from the run that `config.mine` names)."""
        return data

    def features(self, method: nn.Module) -> nn.Module:
        """The method's evaluation features as a plain module (what `contrastlab.eval.embed` expects)."""
        return _Features(method)


class _Features(nn.Module):
    def __init__(self, method):
        super().__init__()
        self.method = method
        self.out_dim = method.feature_dim

    def forward(self, x):
        return self.method.embed(x)
