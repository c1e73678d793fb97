"""`export_run(RUN, format=..., out=DIR)`: a trained run's encoders in the forms other tools load, giving the vectors
`contrastlab search` embeds with.

* a text run, ``format="sentence-transformers"``: DIR is a sentence-transformers folder (`export.text`) and
  ``SentenceTransformer(DIR)`` gives the run's L2-normalised text vectors. A "transformer" encoder becomes a plain
  XLM-RoBERTa-XL model (converted weight for weight); "bag", "cnn" and wordllama a custom module in the folder
  (``trust_remote_code=True``; contrastlab need not be installed); an hf:/st: model its own folder, fine-tuned.
* an image run, ``"safetensors"``: DIR holds model.safetensors and config.json (`export.images`; rebuild it with
  `load_image_encoder(DIR)`); ``"onnx"`` adds model.onnx (input "pixels" (B, C, H, W) float32 in [0, 1]).
* an image-text run, any of the three: DIR/text (sentence-transformers, through the run's projection into the
  shared space) and DIR/image (safetensors and config.json, plus model.onnx with ``"onnx"``).

Every export writes DIR/contrastlab_export.json (the run, its step, the towers) and is atomic: it is written into a
temporary sibling folder, whose safetensors files are read back, then renamed to DIR. Before the rename, an exported
image tower, rebuilt from its own files, is checked against the run's embedder on random pixels (`VERIFY_ATOL`).

>>> export_run("no/such/run", format="onnx", out="unused")   # doctest: +ELLIPSIS
Traceback (most recent call last):
ValueError: RUN 'no/such/run' is not a run directory (no config.json ...
"""
from __future__ import annotations

import os
from pathlib import Path

from .folders import check_out, read_safetensors
from .images import load_image_encoder
from .towers import EXPORTERS, FORMATS, FORMATS_BY_MODALITY, MANIFEST, VERIFY_ATOL

__all__ = ["export_run", "FORMATS", "FORMATS_BY_MODALITY", "EXPORTERS", "load_image_encoder", "read_safetensors",
           "MANIFEST", "VERIFY_ATOL"]

def _check_format(fmt: str, modality: str, run_path: Path) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"`format` must be one of {list(FORMATS)}, got {fmt!r}")
    if fmt not in FORMATS_BY_MODALITY[modality]:
        hint = {"text": "a text run exports as sentence-transformers (its weights are the model.safetensors in "
                        "that folder)",
                "image": "an image run's encoder is not a text model: export it as safetensors or onnx"}[modality]
        kind = {"text": "a text run", "image": "an image run"}[modality]
        raise ValueError(f"RUN {str(run_path)!r} is {kind}, which cannot be exported as {fmt!r}: {hint}")


def export_run(run, *, format: str, out) -> dict:
    """Export run directory `run` into new or empty folder `out` as `format` (one of `FORMATS`); returns the
    manifest written to out/contrastlab_export.json. Clear errors (ValueError, FileExistsError) for a folder that
    is not a run, a format the run cannot take, or an `out` that holds files already."""
    from ..rundir import RunDir
    from ..runs import REBUILDERS, run_modality
    run_dir = RunDir(run)
    saved = run_dir.read_config()
    if saved is None:
        raise ValueError(f"RUN {os.fspath(run)!r} is not a run directory (no {run_dir.config_file.name} there: "
                         f"give a folder written by `contrastlab train`)")
    modality = run_modality(saved)
    if modality not in FORMATS_BY_MODALITY or modality not in REBUILDERS:
        raise ValueError(f"RUN {os.fspath(run)!r}: runs of modality {modality!r} cannot be exported; those that "
                         f"can: {sorted(FORMATS_BY_MODALITY)}")
    _check_format(format, modality, run_dir.path)
    out = check_out(out)
    return EXPORTERS[modality](run_dir.path, fmt=format, out=out)

