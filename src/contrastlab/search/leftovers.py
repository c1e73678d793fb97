"""The leftovers of an index write that was killed: its temporary sibling folders, found and removed.

`save_index(index, "runs/idx")` writes `runs/.idx.<pid>-XXXXXXXX.tmp/` and renames it to `runs/idx`; the index it
replaces is moved aside to `runs/.idx.<pid>-XXXXXXXX.old/index` for that moment. A writer killed in between leaves
those folders behind (up to the size of an index each). A leftover is stale when its writer is gone: the process
`<pid>` no longer exists on this machine (a folder named by an older contrastlab, without a pid, when nothing in
it changed for `UNNAMED_STALE_AFTER` seconds). A live writer's folders, this process's among them, are never
touched, so two writers never remove each other's work.

Stale leftovers are removed only while the index folder itself exists (then none of them holds the only copy
of an index): by the next write, and by the next load.

>>> import tempfile, pathlib
>>> parent = pathlib.Path(tempfile.mkdtemp())
>>> (parent / "idx").mkdir()
>>> _ = (parent / "idx" / "meta.json").write_text("{}")
>>> (parent / ".idx.999999999-k2j4h5g6.tmp").mkdir()                  # written by a process that is gone
>>> [p.name for p in stale_leftovers(parent / "idx")]
['.idx.999999999-k2j4h5g6.tmp']
>>> [p.name for p, size in remove_leftovers(parent / "idx")]
['.idx.999999999-k2j4h5g6.tmp']
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from ..processes import pid_alive

__all__ = ["temporary_folder", "stale_leftovers", "remove_leftovers", "pid_alive", "UNNAMED_STALE_AFTER"]

#: Seconds without a change after which a leftover without a writer pid (an older contrastlab's) is stale.
UNNAMED_STALE_AFTER = 3600.0
KINDS = ("tmp", "old")

log = logging.getLogger("contrastlab.search")


def temporary_folder(path: Path, kind: str) -> Path:
    """A new empty sibling folder of `path` for a write of it: `.NAME.<pid>-XXXXXXXX.tmp` (kind "tmp", the
    index being written) or `.old` (kind "old", the index being replaced)."""
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}")
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}-", suffix=f".{kind}", dir=path.parent))


def _newest_change(folder: Path) -> float:
    newest = folder.lstat().st_mtime
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except FileNotFoundError:
                pass
    return newest


def stale_leftovers(path: str | os.PathLike) -> list[Path]:
    """The temporary folders of writes of `path` whose writer is gone (see the module docstring), sorted."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:(?P<pid>\d+)-)?[a-z0-9_]{{8}}\.(?:{'|'.join(KINDS)})")
    try:
        entries = sorted(path.parent.iterdir())
    except OSError:                                     # no parent folder, or not readable
        return []
    stale = []
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m is None or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            if m["pid"] is not None:
                if int(m["pid"]) == os.getpid() or pid_alive(int(m["pid"])):
                    continue                            # a live write (maybe another thread of this process)
            elif time.time() - _newest_change(entry) < UNNAMED_STALE_AFTER:
                continue
        except OSError:                                 # removed meanwhile
            continue
        stale.append(entry)
    return stale


def _size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def remove_leftovers(path: str | os.PathLike, *, marker: str = "meta.json") -> list[tuple[Path, int]]:
    """Remove the stale leftovers of writes of `path` if `path/marker` exists (else they may hold the only copy of
    the index, and are kept); returns (folder, bytes) of each removed. Errors (a read-only folder) are ignored."""
    path = Path(path)
    if not (path / marker).is_file():
        return []
    removed = []
    for folder in stale_leftovers(path):
        size = _size(folder)
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            log.info("search: removed %s (%d bytes), left by an interrupted write of %s", folder, size, path)
            removed.append((folder, size))
    return removed
