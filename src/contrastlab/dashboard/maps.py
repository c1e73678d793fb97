"""The 2-D maps of one run's snapshots, one chain per projection method: snapshot k's map starts
from snapshot k-1's, so the maps are computed in snapshot order, once, and kept in memory (a
(P, 2) float32 array each). A chain entry is keyed by its file's (name, mtime, size): a snapshot
that is rewritten (a resumed run) drops its map and every map after it.

PCA maps are computed on request. A t-SNE or UMAP map takes seconds, so :meth:`MapChains.status`
does not wait for one: it hands the wanted snapshot to one background thread per run and answers with the
progress, which the page shows
while it polls. Asking for another method stops the computation of the one before.

Example::

    >>> import tempfile, pathlib
    >>> from contrastlab.dashboard.runs import RunView
    >>> from contrastlab.dashboard.synthetic import write_synthetic_run
    >>> run = RunView(write_synthetic_run(pathlib.Path(tempfile.mkdtemp()) / "run", points=30, snapshots=2))
    >>> status = run.map_status(1, method="pca")
    >>> status.state, status.xy.shape, status.step
    ('ready', (30, 2), 100)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .projection import LABELS, Cancelled, first_use_note, project

__all__ = ["MapChains", "MapStatus", "FAST_METHODS"]

#: Methods computed in the request's own thread (fast enough to wait for).
FAST_METHODS = frozenset({"pca"})


@dataclass
class MapStatus:
    """Where the map of one snapshot stands.

    state: "ready" (``step``, ``time``, ``xy`` (P, 2) float32 are set), "computing" (``done`` of the
    ``total`` maps the chain needs up to this snapshot are ready, ``fraction`` of the next one),
    "unreadable" (the snapshot is listed but cannot be read yet) or "error" (``message`` says why).
    """
    state: str
    method: str
    step: int | None = None
    time: float | None = None
    xy: np.ndarray | None = None
    done: int = 0
    total: int = 0
    fraction: float = 0.0
    message: str = ""

    def to_json(self) -> dict:
        return {"state": self.state, "method": self.method, "label": LABELS[self.method], "done": self.done,
                "total": self.total, "fraction": round(self.fraction, 4), "message": self.message}


class MapChains:
    """The map chains of one run. Thread-safe.

    Args:
        files: returns the run's snapshot entries in order (as ``RunView.snapshot_files``).
        key: an entry's identity (name, mtime, size), or None when it cannot be stat'ed.
        load: an entry's (step, time, embeddings (P, D)), or None when it cannot be read (yet).
    """

    def __init__(self, files: Callable[[], list], key: Callable, load: Callable):
        self._files, self._key, self._load = files, key, load
        self._cond = threading.Condition()
        self._chains: dict[str, list] = {}           # method -> [(key, (step, time, xy) | None)] in order
        self._compute = {}                           # method -> Lock: one computation per chain at a time
        self._failed: dict = {}                      # (method, key) -> message
        self._want: tuple[str, int] | None = None    # what the worker computes toward
        self._current: list | None = None            # [method, position, fraction] of the map in progress
        self._worker: threading.Thread | None = None

    # ------------------------------------------------------------------ public
    def status(self, index: int, method: str, *, wait: bool = False) -> MapStatus | None:
        """The map of snapshot ``index``; None if there is no such snapshot. Slow methods are computed in
        the background unless ``wait``; PCA always here and now."""
        keys = self._keys(index)
        if keys is None:
            return None
        if wait or method in FAST_METHODS:
            self._extend(method, keys, progress=None)
            return self._status(method, keys)
        with self._cond:
            got = self._status(method, keys)
            if got.state == "computing":
                self._want = (method, index)
                if self._worker is None:
                    self._worker = threading.Thread(target=self._work, name="contrastlab-maps", daemon=True)
                    self._worker.start()
            return got

    def computed(self, method: str) -> int:
        """How many maps of ``method``'s chain are in memory (from the first snapshot on)."""
        with self._cond:
            return len(self._chains.get(method, ()))

    def wait(self, index: int, method: str, timeout: float) -> MapStatus | None:
        """Block until the map of snapshot ``index`` is no longer being computed (or ``timeout`` s)."""
        if method in FAST_METHODS:
            return self.status(index, method)
        with self._cond:
            self._cond.wait_for(lambda: (s := self.status(index, method)) is None or s.state != "computing",
                                timeout)
            return self.status(index, method)

    # ----------------------------------------------------------------- helpers
    def _keys(self, index: int) -> list | None:
        files = self._files()
        if not 0 <= index < len(files):
            return None
        return [(entry, self._key(entry)) for entry in files[:index + 1]]

    def _chain(self, method: str, keys: list) -> list:
        """The valid prefix of ``method``'s chain for these files (a stale tail is dropped). Under _cond."""
        chain = self._chains.setdefault(method, [])
        n = 0
        while n < len(chain) and n < len(keys) and chain[n][0] == keys[n][1] and keys[n][1] is not None:
            n += 1
        if n < len(chain) and n < len(keys):                  # a snapshot changed: its map and those after go
            del chain[n:]
        return chain

    def _status(self, method: str, keys: list) -> MapStatus:
        with self._cond:
            chain = self._chain(method, keys)
            index = len(keys) - 1
            if len(chain) > index:
                value = chain[index][1]
                if value is None:
                    return MapStatus("unreadable", method, message="the snapshot cannot be read yet")
                step, t, xy = value
                return MapStatus("ready", method, step=step, time=t, xy=xy, done=index + 1, total=index + 1)
            position = len(chain)
            failed = self._failed.get((method, keys[position][1]))
            if failed is not None:
                return MapStatus("error", method, message=failed)
            fraction = 0.0
            if self._current is not None and self._current[:2] == [method, position]:
                fraction = self._current[2]
            message = f"computing {LABELS[method]}: snapshot {position + 1} of {index + 1}"
            note = first_use_note(method)
            return MapStatus("computing", method, done=position, total=index + 1, fraction=fraction,
                             message=message + (f" ({note})" if note else ""))

    def _extend(self, method: str, keys: list, progress) -> None:
        """Compute ``method``'s maps up to the last of ``keys`` in this thread."""
        while True:
            with self._cond:
                lock = self._compute.setdefault(method, threading.Lock())
            with lock:
                with self._cond:
                    chain = self._chain(method, keys)
                    position = len(chain)
                    if position >= len(keys) or (method, keys[position][1]) in self._failed:
                        return
                    previous = next((v[2] for _, v in reversed(chain) if v is not None), None)
                    self._current = [method, position, 0.0]
                entry, key = keys[position]
                try:
                    snap = self._load(entry) if key is not None else None
                    value = None if snap is None else (snap[0], snap[1],
                                                       project(snap[2], method=method, previous=previous,
                                                               progress=progress))
                except Cancelled:
                    return
                except Exception as e:  # noqa: BLE001 - a library failure becomes a message, never a 500
                    with self._cond:
                        if len(self._failed) > 256:
                            self._failed.clear()
                        self._failed[(method, key)] = (f"{LABELS[method]} failed on snapshot {position + 1}: "
                                                       f"{type(e).__name__}: {e}")
                    return
                finally:
                    with self._cond:
                        self._current = None
                        self._cond.notify_all()
                with self._cond:
                    chain = self._chain(method, keys)
                    if len(chain) == position:                         # nothing changed under us
                        chain.append((key, value))
                    self._cond.notify_all()

    def _work(self) -> None:
        """The background thread: compute toward ``_want`` until nothing is wanted."""
        # Not niced: at nice 10 beside two busy processes the thread got ~10% of a core and a 150-point t-SNE
        # chain did not finish within 3 minutes; a map the user asked for is bounded work worth its share.
        while True:
            with self._cond:
                want = self._want
                if want is None:
                    self._worker = None
                    self._cond.notify_all()
                    return
            method, index = want

            def progress(fraction: float, method=method) -> bool:
                with self._cond:
                    if self._current is not None:
                        self._current[2] = fraction
                    self._cond.notify_all()
                    return self._want is not None and self._want[0] != method      # another method is wanted

            keys = self._keys(index)
            if keys is not None:
                self._extend(method, keys, progress)
            with self._cond:
                if self._want == want:                         # done (or failed, or gone): nothing more to do
                    self._want = None
                self._current = None
                self._cond.notify_all()
