"""Whether a process still lives: how a killed writer's leftovers (temporary files, a "running" status) are told
apart from a live writer's. Plain `os`, no torch, so that the search server can use it too.

>>> import os
>>> pid_alive(os.getpid()), pid_alive(0)
(True, False)
"""
from __future__ import annotations

import os

__all__ = ["pid_alive"]


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (one we may not signal counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
