"""`load_embedder(source)`: what search embeds with, from a run directory or a model spec.

A text run directory gives its encoder (`contrastlab.runs.load_run`: its tokenizer, model and last checkpoint; the
training data is not needed); an image run directory its evaluation feature (`ImageQueryEmbedder`:
`encode_images`, `prepare_query_image`); an image-text run directory its two towers (`ImageTextEmbedder`: `encode`
for texts, `encode_images` for images); ``"wordllama"``, ``"hf:PATH"``, ``"st:PATH"`` a frozen or bring-your-own
text model.

>>> load_embedder("no/such/run")
Traceback (most recent call last):
ValueError: `source` must be a text run directory or one of 'wordllama', 'hf:PATH', 'st:PATH', got 'no/such/run'
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["load_embedder"]


def load_embedder(source: str | Path):
    """An :class:`Embedder` from a text run directory or a model spec ("wordllama", "hf:PATH", "st:PATH"); an
    `ImageTextEmbedder` (texts and images) from an image-text run directory. Runs are loaded by
    `contrastlab.runs.load_run` (on the CPU)."""
    from ..devices import CPU
    from ..models.text.external import TEXT_ENCODER_LOADERS, load_text_encoder_from
    from ..rundir import RunDir
    from ..text.embedder import Embedder
    text = str(source)
    run = RunDir(text)
    if run.exists():
        from ..runs import load_run, run_modality
        modality = run_modality(run.read_config() or {})
        if modality == "image_text":
            from .multimodal import load_image_text_embedder
            return load_image_text_embedder(run.path)
        if modality == "image":
            from .images import load_image_run_embedder
            return load_image_run_embedder(run.path)
        if modality != "text":
            raise ValueError(f"{run.path} is not a text run (its {run.config_file.name} has no text model); train "
                             f"one with a text dataset, e.g. `contrastlab train pairs --data verses-en-es`")
        return load_run(run.path, device=CPU).embedder()
    if text.partition(":")[0] in TEXT_ENCODER_LOADERS:
        return Embedder(load_text_encoder_from(text), source=text)
    if run.path.exists():
        raise ValueError(f"`source` {text!r} is a path but not a run directory (no {run.config_file.name})")
    raise ValueError(f"`source` must be a text run directory or one of 'wordllama', 'hf:PATH', 'st:PATH', got {text!r}")
