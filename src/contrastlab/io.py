"""Files that are never half-written: atomic writes, checkpoints that fail with a clear message.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_json(d / "a.json", {"x": 1})
>>> read_json(d / "a.json")
{'x': 1}
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from . import devices, faults
from .processes import pid_alive

__all__ = ["atomic_write_bytes", "remove_stale_temporaries", "write_json", "read_json", "append_jsonl", "read_jsonl",
           "save_checkpoint", "load_checkpoint", "CheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupt or from another kind of run."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a mixture."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writer's pid is in the name, so a later process can tell a killed writer's leftover from a live write
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        faults.point("atomic-write", path.name)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?[^.]+\.tmp$")


def remove_stale_temporaries(folder: str | os.PathLike) -> list[tuple[Path, int]]:
    """Remove the temporary files that `atomic_write_bytes` left in ``folder`` when its writer was killed
    mid-write; returns (path, bytes) of each. A temporary whose writer process is still alive is kept; one of an
    older contrastlab (no pid in its name) is removed, so call this only on a folder this process owns.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / ".last.pt.999999999-abcd1234.tmp").write_bytes(b"half a checkpoint")
    >>> [(p.name, n) for p, n in remove_stale_temporaries(d)]
    [('.last.pt.999999999-abcd1234.tmp', 17)]
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TEMPORARY.match(p.name)
        if m is None or not p.is_file():
            continue
        if m["pid"] is not None and int(m["pid"]) != os.getpid() and pid_alive(int(m["pid"])):
            continue
        if m["pid"] is not None and int(m["pid"]) == os.getpid():
            continue                                  # our own write in progress (another thread)
        try:
            size = p.stat().st_size
            p.unlink()
        except FileNotFoundError:
            continue
        removed.append((p, size))
    return removed


def _jsonable(value: Any):
    if isinstance(value, float) and not math.isfinite(value):
        return None                                   # JSON has no NaN/inf; null says "not a number"
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _jsonable(value.item())
    return value


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(_jsonable(obj), indent=2) + "\n").encode())


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None


def append_jsonl(path: str | os.PathLike, obj: dict) -> None:
    """Append one line and flush it, so a reader (the dashboard) sees whole lines promptly."""
    with open(path, "a") as f:
        f.write(json.dumps(_jsonable(obj)) + "\n")
        f.flush()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Every complete line of a JSONL file; a trailing partial line (a writer was killed) is ignored."""
    out = []
    path = Path(path)
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """`torch.save` to memory, then an atomic write: a kill mid-save leaves the previous checkpoint intact."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, *, required: tuple[str, ...] = ()) -> dict:
    """Load a checkpoint written by `save_checkpoint`, with a clear error for every way it can be bad."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path} ({path.stat().st_size} bytes) is truncated or corrupt: "
                              f"it is not a torch.save archive")
    try:
        state = torch.load(path, map_location=devices.CPU, weights_only=True)   # a GPU's checkpoint loads anywhere
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as e:
        size = path.stat().st_size
        raise CheckpointError(
            f"checkpoint {path} ({size} bytes) is truncated or corrupt and cannot be loaded: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    except Exception as e:  # the weights-only unpickler refusing a foreign object, etc.
        first = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointError(f"checkpoint {path} is not a contrastlab checkpoint (it holds objects other than "
                              f"tensors and plain data): {type(e).__name__}: {first}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict of training state")
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}; it was not written by `contrastlab train`")
    return state
