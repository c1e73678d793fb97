"""What each kind of run exports: `EXPORTERS` maps a run's modality ("text", "image", "image_text") to a function
``(run_path, *, fmt, out) -> manifest`` that loads the run (on the CPU), writes its towers into a temporary sibling
of `out` and renames it into place (`folders.export_folder`).

The image tower written is checked before the rename: rebuilt from its own files (`load_image_encoder`), it must
give the run's embedder's vectors on random pixels to `VERIFY_ATOL` (a method whose evaluation feature is not its
encoder's output would fail here rather than export the wrong thing).

>>> sorted(EXPORTERS), FORMATS_BY_MODALITY["image"]
(['image', 'image_text', 'text'], ('safetensors', 'onnx'))
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import __version__
from ..devices import CPU
from .folders import export_folder, write_json_file
from .images import ImageTower, image_spec, load_image_encoder, write_image_tower, write_onnx
from .text import write_text_tower

__all__ = ["EXPORTERS", "FORMATS", "FORMATS_BY_MODALITY", "MANIFEST", "VERIFY_ATOL"]

FORMATS = ("sentence-transformers", "safetensors", "onnx")
#: What each kind of run exports to (an image-text run's text tower is always sentence-transformers).
FORMATS_BY_MODALITY = {"text": ("sentence-transformers",), "image": ("safetensors", "onnx"), "image_text": FORMATS}
#: The export's description, in the root of every export.
MANIFEST = "contrastlab_export.json"
#: Largest difference allowed between an exported image tower (rebuilt from its files) and the run's embedder.
VERIFY_ATOL = 1e-5

EXPORTERS: dict[str, Callable] = {}


def _exporter(modality: str):
    def deco(fn):
        EXPORTERS[modality] = fn
        return fn
    return deco


def _manifest(run, fmt: str, towers: dict) -> dict:
    return {"contrastlab_version": __version__, "source_run": str(run.path.resolve()), "step": run.step,
            "method": run.config.method, "modality": run.modality, "format": fmt, "towers": towers}


def _image_architecture(run) -> str:
    """The image encoder's registered name, as `contrastlab.runs.rebuild` reads it."""
    return run.model.get("encoder") or ("small_cnn" if run.config.encoder == "auto" else run.config.encoder)


def _image_tower(run, encoder, projection, embedder, folder: Path, fmt: str, *, in_channels: int) -> dict:
    size = tuple(int(v) for v in run.model["image_size"])
    spec = image_spec(architecture=_image_architecture(run), options=run.config.encoder_options,
                      in_channels=in_channels, image_size=size, mean=run.model["mean"], std=run.model["std"],
                      feature_dim=int(encoder.out_dim) if isinstance(getattr(encoder, "out_dim", None), int)
                      else int(run.model["feature_dim"]),
                      embedding_dim=None if projection is None else int(projection.weight.shape[0]))
    folder.mkdir(exist_ok=True)
    write_image_tower(ImageTower(encoder, projection).eval(), spec, folder)
    rebuilt = load_image_encoder(folder)
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (4, in_channels, *size), dtype=torch.uint8, generator=g)    # (4, C, H, W)
    with torch.inference_mode():
        got = rebuilt(pixels.float().div(255)).numpy()
    want = embedder.encode_images(pixels.numpy())
    gap = float(np.abs(got - want).max())
    if gap > VERIFY_ATOL:
        raise ValueError(f"the exported image encoder differs from the run's embedder by {gap:.2e} (> {VERIFY_ATOL}):"
                         f" method {run.config.method!r} does not embed images with its encoder alone; not exported")
    files = ["model.safetensors", "config.json"]
    if fmt == "onnx":
        write_onnx(rebuilt, spec, folder)
        files.append("model.onnx")
    return {"format": "onnx" if fmt == "onnx" else "safetensors", "files": files, "embedding_dim":
            spec["embedding_dim"], "architecture": spec["architecture"]}


@_exporter("text")
def export_text(run_path: Path, *, fmt: str, out: Path) -> dict:
    from ..runs import load_run
    run = load_run(run_path, device=CPU)
    with export_folder(out) as tmp:
        manifest = _manifest(run, fmt, {".": write_text_tower(run.method.encoder, tmp)})
        write_json_file(tmp / MANIFEST, manifest)
    return manifest


@_exporter("image")
def export_image(run_path: Path, *, fmt: str, out: Path) -> dict:
    from ..runs import load_run
    run = load_run(run_path, device=CPU)
    with export_folder(out) as tmp:
        tower = _image_tower(run, run.method.encoder, None, run.embedder(), tmp, fmt,
                             in_channels=int(run.model["in_channels"]))
        manifest = _manifest(run, fmt, {".": tower})
        write_json_file(tmp / MANIFEST, manifest)
    return manifest


@_exporter("image_text")
def export_image_text(run_path: Path, *, fmt: str, out: Path) -> dict:
    from ..runs import load_run
    run = load_run(run_path, device=CPU)
    method = run.method
    with export_folder(out) as tmp:
        image = _image_tower(run, method.encoder.image, method.image_proj, run.embedder(), tmp / "image", fmt,
                             in_channels=3)
        (tmp / "text").mkdir()
        text = write_text_tower(method.encoder.text, tmp / "text", projection=method.text_proj.weight.detach())
        manifest = _manifest(run, fmt, {"image": image, "text": text})
        write_json_file(tmp / MANIFEST, manifest)
    return manifest
