"""The files of an export: a folder written atomically (a temporary sibling renamed into place) and safetensors
weights read back with an error that names the file.

>>> import tempfile, pathlib, torch
>>> out = pathlib.Path(tempfile.mkdtemp()) / "model"
>>> with export_folder(out) as tmp:
...     write_safetensors(tmp / "model.safetensors", {"w": torch.ones(2, 3)})
>>> sorted(p.name for p in out.iterdir()), read_safetensors(out / "model.safetensors")["w"].shape
(['model.safetensors'], torch.Size([2, 3]))
>>> with export_folder(out) as tmp:          # doctest: +ELLIPSIS
...     pass
Traceback (most recent call last):
FileExistsError: `--out` ... already exists and is not empty: export into a new or empty folder
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

import torch

from ..devices import to_host

__all__ = ["export_folder", "check_out", "write_safetensors", "read_safetensors", "write_json_file"]


def check_out(out: str | os.PathLike) -> Path:
    """`out` as a Path when an export may go there: a folder that does not exist yet, or an empty one."""
    out = Path(os.fspath(out)).expanduser()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"`--out` {str(out)!r} is a file: export into a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        raise FileExistsError(f"`--out` {str(out)!r} already exists and is not empty: export into a new or empty "
                              f"folder")
    return out


@contextmanager
def export_folder(out: str | os.PathLike):
    """Yield a temporary folder beside `out`; on success every safetensors file in it is read back and it is
    renamed to `out` (readers see no export or the whole one); on an error it is removed. `out` must be new or empty (checked before and again at the rename)."""
    out = check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.export-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    try:
        yield tmp
        for written in sorted(tmp.rglob("*.safetensors")):   # read back: a bad write fails here, naming the file
            read_safetensors(written)
        check_out(out)
        os.replace(tmp, out)                          # onto a missing or empty folder: one atomic rename
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], *, metadata: dict[str, str] | None = None) -> None:
    """Contiguous CPU copies of `tensors` (shared storage untied) into safetensors file `path`."""
    from safetensors.torch import save_file
    save_file({k: to_host(v).contiguous().clone() for k, v in tensors.items()}, str(path),
              metadata=metadata)


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of safetensors file `path` (on the CPU), or a ValueError that names the file when it is
    missing, truncated or not safetensors at all."""
    from safetensors.torch import load_file
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (the exported weights)")
    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types (SafetensorError, OSError, ...)
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{path} ({path.stat().st_size} bytes) is not a readable safetensors file (corrupt or "
                         f"truncated): {first}") from None


def write_json_file(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
