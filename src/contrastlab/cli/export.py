"""The `contrastlab export RUN --format FORMAT --out DIR` command: a run's encoders in the forms other tools load
(the export code, torch and the models are imported when the command runs).

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="contrastlab")
>>> register(parser.add_subparsers(dest="command"), parser)
>>> args = parser.parse_args(["export", "runs/pairs", "--format", "sentence-transformers", "--out", "exported"])
>>> args.format, str(args.out)
('sentence-transformers', 'exported')
"""
from __future__ import annotations

import argparse
import functools
from pathlib import Path

__all__ = ["register", "export_command", "FORMAT_CHOICES"]

#: The formats (as `contrastlab.export.FORMATS`, spelled here so building the parser imports nothing heavy).
FORMAT_CHOICES = ("sentence-transformers", "safetensors", "onnx")

DESCRIPTION = """\
Write a trained run's encoders into a new (or empty) folder DIR, atomically, giving the vectors
`contrastlab search` embeds with (L2-normalised). By the kind of run:

  text run        --format sentence-transformers: DIR loads with SentenceTransformer(DIR); a "transformer"
                  encoder becomes a plain XLM-RoBERTa-XL model, "bag" / "cnn" a custom module in the folder
                  (load with trust_remote_code=True); hf:/st: models keep their own architecture.
  image run       --format safetensors: DIR/model.safetensors and DIR/config.json (architecture, image size,
                  channels, mean / std, embedding dim), rebuilt by contrastlab.export.load_image_encoder(DIR);
                  --format onnx: the same plus DIR/model.onnx (input "pixels": float32 (B, C, H, W) = uint8 / 255).
  image-text run  any format: DIR/text (sentence-transformers, in the shared space) and DIR/image (safetensors
                  and config.json, plus model.onnx with --format onnx).

DIR/contrastlab_export.json records the run, its checkpoint step and the towers written."""


def register(subparsers, top) -> None:
    """Add `export` to an argparse subparsers object; its usage errors are reported by `top`."""
    ex = subparsers.add_parser("export", help="write a run's encoders as sentence-transformers, safetensors or ONNX",
                               description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    ex.add_argument("run", type=Path, metavar="RUN", help="a run directory written by `contrastlab train`")
    ex.add_argument("--format", required=True, choices=FORMAT_CHOICES,
                    help="sentence-transformers (text and image-text runs), safetensors or onnx (image and "
                         "image-text runs)")
    ex.add_argument("--out", required=True, type=Path, metavar="DIR",
                    help="the folder to create (it must not exist, or be empty)")
    ex.set_defaults(handler=functools.partial(export_command, parser=top))


def export_command(args, *, parser) -> int:
    """`contrastlab export RUN --format FORMAT --out DIR`: prints where each tower went."""
    from ..export import export_run
    from ..io import CheckpointError
    try:
        manifest = export_run(args.run, format=args.format, out=args.out)
    except (FileNotFoundError, FileExistsError, CheckpointError, ValueError, ImportError) as e:
        parser.exit(2, f"contrastlab export: {e}\n")
    for where, tower in manifest["towers"].items():
        folder = args.out if where == "." else args.out / where
        note = " (load with trust_remote_code=True)" if tower.get("trust_remote_code") else ""
        print(f"{folder}: {tower['format']}, {tower['embedding_dim']}-dimensional{note}")
    return 0
