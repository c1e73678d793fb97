"""IDX files, the MNIST / Fashion-MNIST format, plain or gzip-compressed.

Layout (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, a dtype code, the number
of dimensions, each dimension as a big-endian uint32, then the values in big-endian C order.

Example::

    >>> import numpy as np, tempfile, os
    >>> from contrastlab.data import read_idx, write_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "toy-idx3-ubyte.gz")
    >>> write_idx(path, np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    >>> read_idx(path).shape
    (2, 3, 4)
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .cache import atomic_write

__all__ = ["read_idx", "write_idx", "IDX_DTYPES"]

#: dtype code -> big-endian numpy dtype.
IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_DEFLATE_RATIO = 1032          # deflate cannot expand more than ~1032:1, a bound on a gz payload


def _read_exact(f, n: int) -> bytes:
    out = f.read(n)
    return out if out is not None else b""


def _parse(f, path: str, stored_bytes: int, compressed: bool) -> np.ndarray:
    head = _read_exact(f, 4)
    if len(head) < 4:
        raise ValueError(f"{path}: not an IDX file: {len(head)} byte(s), the header needs 4")
    if head[:2] != b"\x00\x00":
        raise ValueError(f"{path}: not an IDX file: magic number must start with two zero bytes, "
                         f"got 0x{head.hex()}")
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{path}: IDX dtype code must be one of {known}, got 0x{code:02X}")
    if ndim == 0:
        raise ValueError(f"{path}: IDX number of dimensions must be >= 1, got 0")
    raw = _read_exact(f, 4 * ndim)
    if len(raw) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header: {ndim} dimensions need {4 * ndim} bytes, got {len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw)
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    bound = stored_bytes * _MAX_DEFLATE_RATIO if compressed else stored_bytes - 4 - 4 * ndim
    if expected > bound:
        has = f"a {stored_bytes}-byte gzip file cannot hold that many" if compressed else f"the file has {bound}"
        raise ValueError(f"{path}: IDX payload length mismatch: header dims {dims} need {expected} bytes "
                         f"but {has}")
    buf = np.empty(expected, dtype=np.uint8)
    view, got = memoryview(buf), 0
    while got < expected:
        k = f.readinto(view[got:])
        if not k:
            break
        got += k
    if got < expected:
        raise ValueError(f"{path}: IDX payload length mismatch: header dims {dims} need {expected} bytes, "
                         f"got {got} (truncated file)")
    if _read_exact(f, 1):
        raise ValueError(f"{path}: IDX payload length mismatch: extra bytes after the {expected} that "
                         f"header dims {dims} need")
    arr = buf.view(dtype).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False) if dtype.itemsize > 1 else arr


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip detected from its first bytes) into a writable native-order array.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file and the problem: bad magic number or dtype code, a payload
            shorter or longer than the header's dimensions, a truncated or corrupt gzip stream.
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        try:
            if not compressed:
                return _parse(raw, path, size, False)
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                return _parse(f, path, size, True)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ValueError(f"{path}: truncated or corrupt gzip file ({type(exc).__name__}: {exc}); "
                             f"delete it and fetch it again") from None


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as IDX (gzip-compressed when the name ends in .gz), atomically."""
    arr = np.asarray(array)
    codes = {dt.newbyteorder("="): c for c, dt in IDX_DTYPES.items()}
    native = arr.dtype.newbyteorder("=")
    if native not in codes:
        raise TypeError(f"`array` must have an IDX dtype (uint8, int8, int16, int32, float32, float64), "
                        f"got {arr.dtype}")
    if not 1 <= arr.ndim <= 255:
        raise ValueError(f"`array` must have 1 to 255 dimensions, got {arr.ndim}")
    code = codes[native]
    payload = (struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
               + np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes())
    if Path(path).name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    with atomic_write(path) as f:
        f.write(payload)
