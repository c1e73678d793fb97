"""A text run on a bring-your-own model (``encoder=st:PATH`` or ``hf:PATH``) keeps that model's folder in the run
directory, ``RUN/model`` (config, tokenizer, starting weights), written once when the run starts: resuming,
`contrastlab.runs.load_run`, search and export then rebuild the model from the run alone, offline, and the trained
weights come from the checkpoint. The original folder may be moved or deleted after the run started.

``max_length`` (`TrainConfig.max_length`, tokens kept per text) applies to these encoders too; None keeps the model's
own limit. The value used is recorded in config.json's ``model`` section, which is what a rebuild reads.

>>> import tempfile
>>> from contrastlab.train import TrainConfig
>>> cfg = TrainConfig(method="pairs", data="verses-en-es", steps=1, encoder="wordllama")
>>> run_model_spec(cfg, tempfile.mkdtemp())           # wordllama ships in its wheel: nothing to keep
'wordllama'
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..models.text.external import load_text_encoder_from
from ..rundir import RunDir

__all__ = ["run_model_spec", "build_external_encoder", "rebuild_external_encoder"]


def run_model_spec(config, run_dir) -> str:
    """The spec that loads the run's model: ``PREFIX:RUN/model`` once the run holds its copy, else
    `config.encoder` (the folder the run started from)."""
    prefix, _, _ = config.encoder.partition(":")
    own = RunDir(run_dir).model_dir
    return f"{prefix}:{own}" if prefix in ("st", "hf") and own.is_dir() else config.encoder


def _keep_copy(encoder, run_dir) -> bool:
    """Write `encoder`'s folder (its own writer, `save_folder`) into RUN/model, atomically (a folder written
    beside it, then renamed); False for an encoder without a folder (wordllama)."""
    save = getattr(encoder, "save_folder", None)
    if save is None:
        return False
    run = RunDir(run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=run.path, prefix=".model-"))
    try:
        save(tmp)
        tmp.rename(run.model_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True


def build_external_encoder(config, run_dir):
    """(encoder, description) for a new or resumed run: loaded from RUN/model when the run holds it (resume),
    else from `config.encoder`, then kept in RUN/model. The description goes into config.json's ``model``."""
    spec = run_model_spec(config, run_dir)
    encoder = load_text_encoder_from(spec, max_length=config.max_length)
    kept = spec != config.encoder or _keep_copy(encoder, run_dir)
    return encoder, {"max_length": config.max_length, **({"model_folder": RunDir(run_dir).model_dir.name}
                                                         if kept else {})}


def rebuild_external_encoder(config, model: dict, run_dir):
    """The run's encoder rebuilt for loading (nothing written): from RUN/model when the run holds it (runs
    written before it was kept need their original folder), with the ``max_length`` the run recorded."""
    return load_text_encoder_from(run_model_spec(config, run_dir), max_length=model.get("max_length"))
