"""`load_run(path)`: a trained run rebuilt from its directory alone (no training data), ready to embed.

>>> import tempfile
>>> from contrastlab.train import TrainConfig, Trainer
>>> cfg = TrainConfig(method="simclr", data="digits", steps=2, batch_size=32, final_eval=False, probe_size=50,
...                   hyperparameters={"proj_hidden_dim": 16, "proj_dim": 8})
>>> trainer = Trainer.from_config(cfg, tempfile.mkdtemp(), show_progress=False); _ = trainer.fit()
>>> run = load_run(trainer.run.path)
>>> run.modality, run.step, run.method.training
('image', 2, False)
>>> embedder = run.embedder()
>>> embedder.encode_images(trainer.data.x[:3]).shape == (3, embedder.dim)      # uint8 (3, C, H, W) -> (3, F)
True
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import devices
from ..io import load_checkpoint
from ..rundir import RunDir
from ..train.config import TrainConfig
from .embedders import ImageEmbedder, TextEmbedder, TwoTowerEmbedder
from .rebuild import REBUILDERS, RunIncomplete

__all__ = ["Run", "load_run", "run_modality"]


def run_modality(saved: dict) -> str:
    """The kind of data a run's config.json (parsed) says it trained on: "image", "text" or "image_text"."""
    model = saved.get("model") if isinstance(saved.get("model"), dict) else {}
    return str(model.get("modality", "image"))


@dataclass
class Run:
    """A loaded run: its directory, configuration, method (weights loaded, eval mode, on `device`), the kind of
    data (`modality`) and the step of its checkpoint."""
    run_dir: RunDir
    config: TrainConfig
    method: nn.Module
    modality: str
    step: int
    model: dict
    device: torch.device

    @property
    def path(self) -> Path:
        return self.run_dir.path

    def embedder(self):
        """What search needs from this run: `encode_texts` (text runs), `encode_images` (image runs: the
        evaluation feature), or both (image-text runs, one shared space); L2-normalised float32 rows."""
        if self.modality not in EMBEDDERS:
            raise ValueError(f"{self.path} is a {self.modality} run: search embeds {', '.join(sorted(EMBEDDERS))} runs "
                             f"only")
        return EMBEDDERS[self.modality](self, str(self.path.resolve()))


def _image_size(run) -> tuple[int, ...]:
    return tuple(int(v) for v in run.model["image_size"])


#: What `Run.embedder()` gives, by the run's modality.
EMBEDDERS = {
    "text": lambda run, source: TextEmbedder(run.method.encoder, source=source),
    "image_text": lambda run, source: TwoTowerEmbedder(run.method, image_size=_image_size(run), source=source),
    "image": lambda run, source: ImageEmbedder(run.method, image_shape=(int(run.model["in_channels"]),
                                                                        *_image_size(run)), source=source),
}


def load_run(path, *, device="auto") -> Run:
    """The run in directory `path` from its config.json, tokenizer.json and checkpoints/last.pt, its method on
    `device` (auto | cpu | cuda | cuda:N | mps) in eval mode. Clear errors (ValueError) for a folder that is not a
    run, a run without a checkpoint, or one whose files do not describe its model."""
    run = RunDir(path)
    saved = run.read_config()
    if saved is None:
        raise ValueError(f"{run.path} is not a run directory (no readable {run.config_file.name})")
    if not isinstance(saved.get("train"), dict):
        raise ValueError(f"{run.config_file} was not written by `contrastlab train` (no 'train' section)")
    modality = run_modality(saved)
    if modality not in REBUILDERS:
        raise ValueError(f"{run.config_file}: the model's modality must be one of {sorted(REBUILDERS)}, got "
                         f"{modality!r}")
    config = TrainConfig.from_dict(saved["train"])
    model = saved["model"] if isinstance(saved.get("model"), dict) else {}
    if model.get("custom"):
        raise RunIncomplete(f"{run.path} was trained with a method built in code (`Trainer(method, ...)`), not from "
                            f"its configuration: its {run.config_file.name} cannot rebuild it; build the method "
                            f"again and load the 'method' state of {run.last_checkpoint}")
    if not run.last_checkpoint.is_file():
        raise ValueError(f"{run.path} has no checkpoint yet ({run.last_checkpoint} is missing): train or resume it "
                         f"first")
    classes = saved.get("classes")
    num_classes = saved.get("num_classes", len(classes) if classes else None)
    with torch.random.fork_rng(devices=[]):                    # building draws initial weights: leave no trace
        method = REBUILDERS[modality](config, model, run, num_classes)
    state = load_checkpoint(run.last_checkpoint, required=("method", "step"))
    try:
        method.load_state_dict(state["method"])
    except RuntimeError as e:
        raise RunIncomplete(f"{run.last_checkpoint} does not match the run's model ({str(e).splitlines()[0]})") \
            from None
    target = devices.resolve(device)
    method.to(target).eval()
    return Run(run_dir=run, config=config, method=method, modality=modality, step=int(state["step"]), model=model,
               device=target)
