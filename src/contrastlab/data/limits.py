"""Bounds on user input that would otherwise grow without limit: the length of one line of a text file, the side
of an image, and the memory a set of images (or one batch of views) needs against the memory this machine has.

Each check raises a ValueError that names what was asked for, the limit and the value got, before anything large
is allocated.

>>> check_line_length("pairs.jsonl", "line 3", 12)
>>> try:
...     check_line_length("pairs.jsonl", "line 3", MAX_LINE_CHARS + 1)
... except ValueError as e:
...     print(str(e)[:74])
pairs.jsonl line 3: 1,000,001 characters, more than the limit of 1,000,000
>>> check_image_bytes("`image_size`", n=10, channels=3, size=64, available=10 ** 9)
"""
from __future__ import annotations

import os

__all__ = ["MAX_LINE_CHARS", "MAX_IMAGE_SIZE", "MEMORY_FRACTION", "available_memory", "check_line_length",
           "check_image_bytes", "format_bytes"]

MAX_LINE_CHARS = 1_000_000     # characters in one line (one record) of a pair, corpus, click or interaction file
MAX_IMAGE_SIZE = 1024          # pixels on the side of a training image (`image_size`, a loader's `size`)
MEMORY_FRACTION = 0.5          # images (or one batch of views) may take at most this share of the available memory


def check_line_length(file: str, where: str, length: int) -> None:
    """Raise when one line (record) of `file` is longer than :data:`MAX_LINE_CHARS` characters."""
    if length > MAX_LINE_CHARS:
        raise ValueError(f"{file} {where}: {length:,} characters, more than the limit of {MAX_LINE_CHARS:,} "
                         f"characters per line; a record (a pair, a document, an impression) must fit in one line "
                         f"of at most {MAX_LINE_CHARS:,} characters")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), or None when it cannot be told."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def format_bytes(n: float) -> str:
    """Bytes in decimal units.

    >>> format_bytes(13.48e12)
    '13.5 TB'
    """
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"                                    # pragma: no cover


def check_image_bytes(name: str, *, n: int, channels: int, size: int | tuple[int, int], bytes_per_value: int = 1,
                      what: str = "images", setting: str | None = None, available: int | None = None) -> None:
    """Raise when `n` images of `channels` x `size` x `size` (uint8 unless `bytes_per_value`) would need more than
    :data:`MEMORY_FRACTION` of the available memory, or when a side exceeds :data:`MAX_IMAGE_SIZE`.

    `name` says what is checked (e.g. "`image_size`", or "folder photos/: the images"); `setting` is what the user
    can lower (default `name`); `available` defaults to :func:`available_memory`.
    """
    setting = setting or name
    h, w = (size, size) if isinstance(size, int) else size
    if max(h, w) > MAX_IMAGE_SIZE:
        fix = "" if setting == name else f"; set a smaller {setting}"
        raise ValueError(f"{name} must be at most {MAX_IMAGE_SIZE} pixels on a side, got {h}x{w} {what}{fix}")
    need = int(n) * int(channels) * int(h) * int(w) * int(bytes_per_value)
    available = available_memory() if available is None else available
    if available is not None and need > MEMORY_FRACTION * available:
        raise ValueError(f"{name}: {n:,} {what} of {channels}x{h}x{w} need {format_bytes(need)}, more than "
                         f"{MEMORY_FRACTION:.0%} of the {format_bytes(available)} of memory available; choose a "
                         f"smaller {setting}{' or batch_size' if 'batch' in what else ''}")
