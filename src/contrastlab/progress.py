"""Progress bars, in one place: every long loop of contrastlab shows one, and `quiet()` silences them all (the CLI's
``--quiet``), the training bar and the evaluation's alike.

>>> with quiet():
...     b = bar(total=3, desc="work")
...     b.disable
True
>>> b.close()
"""
from __future__ import annotations

import contextlib

from tqdm.auto import tqdm

__all__ = ["bar", "quiet", "is_quiet"]

_global_quiet = [0]


def is_quiet() -> bool:
    return _global_quiet[0] > 0


def bar(iterable=None, *, disable: bool = False, **kwargs) -> tqdm:
    """A tqdm bar that `quiet()` disables (``disable`` keeps its usual meaning otherwise)."""
    return tqdm(iterable, disable=disable or is_quiet(), dynamic_ncols=True, **kwargs)


@contextlib.contextmanager
def quiet(enabled: bool = True):
    """No progress bars inside the block (nestable; ``enabled=False`` is a no-op)."""
    if not enabled:
        yield
        return
    _global_quiet[0] += 1
    try:
        yield
    finally:
        _global_quiet[0] -= 1
