"""Runs: the one owner of the run directory. `load_run(path)` rebuilds a trained run (config, method with its
weights on a chosen device, the kind of data) and `Run.embedder()` gives what search needs.

The layering: the directory's layout and its one reader / writer, `RunDir`, live in `contrastlab.rundir`, a low
module beside `contrastlab.io` (the trainer writes a run through it, and `train` sits below `runs`); this package
sits above `train` (rebuilding a method needs the training configuration) and below search, the dashboard and the
CLI, which load runs through it. Nothing below imports it: where training needs a run's model (hard negatives
mined by a text run, ``mine=RUN``), the caller loads it here and hands the embedder down
(``Trainer.from_config(..., first_stage=load_run(RUN).embedder())``).

A run is rebuilt from its description alone (`rebuild.REBUILDERS`, by modality): config.json's ``train`` section
and its ``model`` section (what the task measured on the data when the run started: image size, channels, channel
mean / std, feature dimension, text encoder, tokenizer) plus tokenizer.json, then every weight comes from the
checkpoint. No training data is read and no stand-in dataset is made.

>>> import tempfile
>>> from contrastlab.runs import RunDir, load_run
>>> RunDir(tempfile.mkdtemp()).exists()                       # no config.json: not a run (yet)
False
"""
from ..rundir import RunDir, RunInUse
from .embedders import ImageEmbedder, TextEmbedder, TwoTowerEmbedder
from .load import Run, load_run, run_modality
from .rebuild import REBUILDERS, RunIncomplete, register_rebuilder
from . import sequences as _sequences  # noqa: F401  (registers the "sequence" rebuilder)

__all__ = ["RunDir", "RunInUse", "Run", "load_run", "run_modality", "REBUILDERS", "register_rebuilder",
           "RunIncomplete", "TextEmbedder", "ImageEmbedder", "TwoTowerEmbedder"]
