"""An image tower as ``model.safetensors`` plus a small ``config.json`` (and ``model.onnx``): the feature `contrastlab
search` embeds images with (the encoder's h, through an image-text run's projection into the shared space), L2-
normalised. `load_image_encoder(DIR)` rebuilds it from those two files alone.

The tower takes float32 pixels in [0, 1] (uint8 / 255), shape (B, C, H, W) at the run's image size, and returns
(B, embedding_dim) unit rows; the channel standardisation is inside it (its mean / std are buffers in the
weights, and in config.json for other readers).

>>> import tempfile, pathlib, torch
>>> from contrastlab.models import create_encoder
>>> enc = create_encoder("small_cnn", in_channels=1, widths=(4, 4, 4, 4))
>>> spec = image_spec(architecture="small_cnn", options={"widths": [4, 4, 4, 4]}, in_channels=1, image_size=(8, 8),
...                   mean=[0.5], std=[0.25], feature_dim=enc.out_dim)
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_image_tower(ImageTower(enc.eval()), spec, folder)["embedding_dim"]
20
>>> x = torch.rand(3, 1, 8, 8)
>>> torch.allclose(load_image_encoder(folder)(x), ImageTower(enc)(x), atol=1e-6)
True
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..models import create_encoder
from .folders import read_safetensors, write_json_file, write_safetensors

__all__ = ["ImageTower", "image_spec", "write_image_tower", "load_image_encoder", "write_onnx", "FORMAT",
           "CONFIG", "WEIGHTS", "ONNX"]

FORMAT = "contrastlab-image-encoder"
CONFIG, WEIGHTS, ONNX = "config.json", "model.safetensors", "model.onnx"


class ImageTower(nn.Module):
    """`encoder` ((B, C, H, W) float in [0, 1] -> (B, F)), then `projection` (F -> E, no bias) when given, then
    L2 normalisation. Shape: (B, C, H, W) -> (B, E or F)."""

    def __init__(self, encoder: nn.Module, projection: nn.Linear | None = None):
        super().__init__()
        self.encoder, self.projection = encoder, projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)                                                  # (B, F)
        if self.projection is not None:
            z = self.projection(z)                                           # (B, E)
        return F.normalize(z, dim=1)


def image_spec(*, architecture: str, options: dict, in_channels: int, image_size, mean, std, feature_dim: int,
               embedding_dim: int | None = None) -> dict:
    """config.json of an image tower (``embedding_dim`` differs from ``feature_dim`` when there is a projection)."""
    return {"format": FORMAT, "contrastlab_version": __version__, "architecture": architecture,
            "encoder_options": dict(options), "in_channels": int(in_channels),
            "image_size": [int(s) for s in image_size], "mean": [float(m) for m in mean],
            "std": [float(s) for s in std], "feature_dim": int(feature_dim),
            "embedding_dim": int(embedding_dim or feature_dim), "projection": embedding_dim is not None,
            "normalize": True, "input": "float32 (B, C, H, W): pixels / 255, at image_size",
            "output": "float32 (B, embedding_dim): L2-normalised", "weights": WEIGHTS}


def write_image_tower(tower: ImageTower, spec: dict, folder: Path) -> dict:
    """model.safetensors (the tower's state dict, its buffers included) and config.json into `folder`."""
    write_safetensors(folder / WEIGHTS, tower.state_dict(), metadata={"format": "pt", "contrastlab": FORMAT})
    write_json_file(folder / CONFIG, spec)
    return spec


def _read_spec(folder: Path) -> dict:
    path = folder / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not an exported image encoder ({CONFIG} is missing)")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ValueError(f"{path} does not describe an exported contrastlab image encoder (its 'format' must be "
                         f"{FORMAT!r}, got {spec.get('format') if isinstance(spec, dict) else spec!r})")
    return spec


def load_image_encoder(folder) -> ImageTower:
    """The image tower exported into `folder`, rebuilt from its config.json and model.safetensors, in eval mode on
    the CPU. Errors name the file that is missing, corrupt or does not match."""
    folder = Path(folder)
    spec = _read_spec(folder)
    encoder = create_encoder(spec["architecture"], in_channels=spec["in_channels"], mean=spec["mean"],
                             std=spec["std"], **spec.get("encoder_options", {}))
    projection = nn.Linear(spec["feature_dim"], spec["embedding_dim"], bias=False) if spec.get("projection") else None
    tower = ImageTower(encoder, projection)
    state = read_safetensors(folder / spec.get("weights", WEIGHTS))
    try:
        tower.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{folder / spec.get('weights', WEIGHTS)} does not match the encoder that {CONFIG} "
                         f"describes ({str(e).splitlines()[0]})") from None
    return tower.eval()


def write_onnx(tower: ImageTower, spec: dict, folder: Path) -> Path:
    """`tower` as model.onnx (input "pixels" (batch, C, H, W) float32, output "embedding"), batch size dynamic,
    by `torch.onnx.export` (the torch.export-based exporter; needs onnxscript)."""
    c, (h, w) = spec["in_channels"], spec["image_size"]
    example = torch.rand(2, c, h, w)
    path = folder / ONNX
    try:
        with warnings.catch_warnings():             # torch.export's own deprecation notices, not the caller's
            warnings.filterwarnings("ignore", message=r".*LeafSpec", category=FutureWarning)
            program = torch.onnx.export(tower.eval(), (example,), dynamo=True, input_names=["pixels"],
                                        output_names=["embedding"],
                                        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1 << 20)},),
                                        verbose=False)
        big = sum(t.numel() * t.element_size() for t in tower.state_dict().values()) > 1 << 30
        program.save(str(path), external_data=big)
    except ImportError as e:
        raise ImportError(f"ONNX export needs the onnx and onnxscript packages ({e}); install contrastlab's "
                          f"dependencies (make setup)") from None
    except Exception as e:  # noqa: BLE001 - the exporter raises many kinds of error for an unsupported operator
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"the {spec['architecture']!r} image encoder does not export to ONNX ({type(e).__name__}: "
                         f"{first}); export it with --format safetensors instead") from None
    return path
