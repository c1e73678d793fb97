"""Where downloads and decoded arrays are cached, and atomic writes (temp file + os.replace).

Example::

    >>> import os, tempfile
    >>> from contrastlab.data.cache import atomic_write
    >>> path = os.path.join(tempfile.mkdtemp(), "hello.txt")
    >>> with atomic_write(path) as f:
    ...     _ = f.write(b"hi")
    >>> open(path, "rb").read()
    b'hi'
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["cache_dir", "atomic_write"]


def cache_dir(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/contrastlab/...``, by default ``~/.cache/contrastlab/...`` (not created)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "contrastlab", *parts)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike):
    """Yield a binary file in ``path``'s folder; on success it replaces ``path`` in one step.

    Readers never see a half-written file: an interrupted write leaves the old file (or none) and
    removes its temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())                # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
