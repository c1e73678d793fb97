"""A writer killed mid-write leaves temporary folders; the next write or load removes them, but never a live
writer's, and never the only copy of an index.

Each child writer pauses at a known point of `save_index` (it prints "paused" and waits for a line on stdin); the
test then kills it or lets it go on. No step waits on time: readline() returns when the child pauses or dies."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from contrastlab.search import IndexFolderError, VectorIndex, load_index, save_index
from contrastlab.search.leftovers import UNNAMED_STALE_AFTER, stale_leftovers

CHILD = r"""
import os, sys
import numpy as np
from contrastlab.search import folders, store
from contrastlab.search.index import VectorIndex

where, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

def pause():
    print("paused", flush=True)
    sys.stdin.readline()

if where == "mid-write":                 # after index.faiss is written into the temporary folder
    write = folders._write
    def _write(file, data):
        write(file, data)
        if file.name == "index.faiss":
            pause()
    folders._write = _write
else:                                    # between the two renames: the old index aside, the new one not in place
    replace = os.replace
    def _replace(src, dst):
        replace(src, dst)
        if os.path.basename(dst) == "index":
            pause()
    os.replace = _replace
store.save_index(VectorIndex.build(np.eye(n), [f"c{i}" for i in range(n)]), path)
print("saved", flush=True)
"""


class Writer:
    """A child process saving an n-document index to `path`, paused at `where` until `go_on()`."""

    def __init__(self, path, where: str, n: int):
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, where, str(path), str(n)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.watchdog = threading.Timer(120, self.proc.kill)          # a safety net only
        self.watchdog.start()
        assert self.proc.stdout.readline() == "paused\n"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.watchdog.cancel()

    def go_on(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "saved\n"
        assert self.proc.wait() == 0
        self.watchdog.cancel()


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("next_start", ["save", "load"])
def test_a_writer_killed_mid_write_leaves_a_temporary_folder_that_the_next_save_or_load_removes(tmp_path, next_start):
    path = tmp_path / "idx"
    save_index(VectorIndex.build(np.eye(2), ["a", "b"]), path)
    writer = Writer(path, "mid-write", 3)
    pid = writer.proc.pid
    writer.kill()
    [name] = leftovers(tmp_path)
    assert name.startswith(f".idx.{pid}-") and name.endswith(".tmp")
    assert (tmp_path / name / "index.faiss").is_file()
    if next_start == "load":
        assert load_index(path).ids == ["a", "b"]
    else:
        save_index(VectorIndex.build(np.eye(4), list("wxyz")), path)
    assert leftovers(tmp_path) == []
    assert load_index(path).ids == (["a", "b"] if next_start == "load" else list("wxyz"))


def test_a_live_writers_temporary_folder_is_kept_and_its_write_completes(tmp_path):
    path = tmp_path / "idx"
    writer = Writer(path, "mid-write", 3)
    try:
        save_index(VectorIndex.build(np.eye(2), ["a", "b"]), path)           # a second writer meanwhile
        assert load_index(path).ids == ["a", "b"]
        [name] = leftovers(tmp_path)
        assert name.startswith(f".idx.{writer.proc.pid}-")                  # still there, untouched
    finally:
        writer.go_on()
    assert load_index(path).ids == ["c0", "c1", "c2"] and leftovers(tmp_path) == []


def test_a_kill_between_the_renames_keeps_the_old_index_until_a_new_one_is_in_place(tmp_path):
    path = tmp_path / "idx"
    save_index(VectorIndex.build(np.eye(2), ["a", "b"]), path)
    writer = Writer(path, "between-renames", 3)
    writer.kill()
    assert not path.exists() and len(leftovers(tmp_path)) == 2               # the new index (.tmp), the old (.old)
    with pytest.raises(IndexFolderError, match=r"does not exist; a write of it was interrupted, and the index it "
                                               r"was replacing is in .*\.idx\.\d+-\w+\.old/index"):
        load_index(path)
    assert len(leftovers(tmp_path)) == 2                                    # kept: the only copies
    save_index(VectorIndex.build(np.eye(4), list("wxyz")), path)
    assert leftovers(tmp_path) == [] and load_index(path).ids == list("wxyz")


def test_a_leftover_without_a_pid_is_removed_only_once_it_is_long_unchanged(tmp_path):
    path = tmp_path / "idx"
    save_index(VectorIndex.build(np.eye(2), ["a", "b"]), path)
    old, recent = tmp_path / ".idx.k2j4h5g6.tmp", tmp_path / ".idx.abcd_123.old"     # an older contrastlab's names
    for folder in (old, recent):
        (folder / "index").mkdir(parents=True)
        (folder / "index" / "index.faiss").write_bytes(b"half an index")
    then = time.time() - UNNAMED_STALE_AFTER - 60
    for p in (old / "index" / "index.faiss", old / "index", old):
        os.utime(p, (then, then))
    (tmp_path / ".other.999999999-k2j4h5g6.tmp").mkdir()                   # another index's: not ours to judge
    assert stale_leftovers(path) == [old]
    load_index(path)
    assert leftovers(tmp_path) == [".idx.abcd_123.old", ".other.999999999-k2j4h5g6.tmp"]
