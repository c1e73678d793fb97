"""IDX reading/writing against hand-built bytes (the format spec: zero, zero, dtype code, ndim,
big-endian uint32 dims, big-endian values), and clear errors on damaged files."""

import gzip
import struct

import numpy as np
import pytest

from contrastlab.data import read_idx, write_idx

CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def reference_bytes(arr: np.ndarray) -> bytes:
    code = CODES[arr.dtype.str[1:]]
    head = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


ARRAYS = [
    np.random.default_rng(0).integers(0, 256, (3, 4, 5), dtype=np.uint8),
    np.array([-128, -1, 0, 5, 127], dtype=np.int8),
    np.arange(-6, 6, dtype=np.int16).reshape(3, 4) * 1000,
    np.array([[-(2 ** 31), 2 ** 31 - 1], [1, -7]], dtype=np.int32),
    np.linspace(-1, 1, 12, dtype=np.float32).reshape(2, 3, 2),
    np.array([np.pi, -np.e, 1e300], dtype=np.float64),
]


@pytest.mark.parametrize("arr", ARRAYS, ids=lambda a: f"{a.dtype}-{a.ndim}d")
@pytest.mark.parametrize("gz", [False, True])
def test_round_trip_against_reference_bytes(tmp_path, arr, gz):
    ref = reference_bytes(arr)
    name = "a.idx.gz" if gz else "a.idx"
    ref_path = tmp_path / f"ref-{name}"
    ref_path.write_bytes(gzip.compress(ref) if gz else ref)
    got = read_idx(ref_path)
    assert got.dtype == arr.dtype.newbyteorder("=") and got.shape == arr.shape
    np.testing.assert_array_equal(got, arr)
    assert got.flags.writeable
    write_idx(tmp_path / name, arr)
    written = (tmp_path / name).read_bytes()
    assert (gzip.decompress(written) if gz else written) == ref


def test_reads_the_real_label_file_like_numpy():
    path = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"
    try:
        raw = gzip.open(path).read()
    except FileNotFoundError:
        pytest.skip("Debian dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
    np.testing.assert_array_equal(read_idx(path), np.frombuffer(raw, np.uint8, offset=8))


def write(tmp_path, data: bytes, name="bad-idx1-ubyte"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


GOOD = reference_bytes(np.arange(10, dtype=np.uint8).reshape(2, 5))


@pytest.mark.parametrize("data, msg", [
    (b"\x00\x00", r"not an IDX file: 2 byte\(s\), the header needs 4"),
    (b"\x01\x02\x08\x01" + GOOD[4:], r"magic number must start with two zero bytes, got 0x01020801"),
    (b"\x00\x00\x07\x02" + GOOD[4:], r"dtype code must be one of .*got 0x07"),
    (b"\x00\x00\x08\x00", r"number of dimensions must be >= 1, got 0"),
    (GOOD[:6], r"truncated IDX header: 2 dimensions need 8 bytes, got 2"),
    (GOOD[:-3], r"payload length mismatch: header dims \(2, 5\) need 10 bytes but the file has 7"),
    (GOOD + b"\x00", r"payload length mismatch: extra bytes after the 10"),
])
def test_bad_plain_files(tmp_path, data, msg):
    p = write(tmp_path, data)
    with pytest.raises(ValueError, match=msg) as info:
        read_idx(p)
    assert str(p) in str(info.value)


def test_truncated_gzip(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    full = gzip.compress(reference_bytes(arr))
    p = write(tmp_path, full[: len(full) // 2], "train-images-idx3-ubyte.gz")
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: truncated or corrupt gzip file \(EOFError"):
        read_idx(p)


def test_corrupt_gzip_body(tmp_path):
    arr = np.random.default_rng(2).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    full = bytearray(gzip.compress(reference_bytes(arr)))
    full[200:260] = bytes(60)                                          # zero a stretch of the deflate stream
    p = write(tmp_path, bytes(full), "x.gz")
    with pytest.raises(ValueError, match=r"x.gz: truncated or corrupt gzip file"):
        read_idx(p)


def test_gzip_payload_shorter_than_header_says(tmp_path):
    p = write(tmp_path, gzip.compress(GOOD[:-4]), "short.gz")
    with pytest.raises(ValueError, match=r"short.gz: IDX payload length mismatch: .*need 10 bytes, got 6"):
        read_idx(p)


def test_gzip_header_claiming_impossible_size(tmp_path):
    huge = bytes([0, 0, 8, 3]) + struct.pack(">3I", 60000, 4000, 4000)
    p = write(tmp_path, gzip.compress(huge + bytes(100)), "huge.gz")
    with pytest.raises(ValueError, match=r"huge.gz: IDX payload length mismatch.*cannot hold"):
        read_idx(p)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.gz")


def test_write_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError, match=r"`array` must have an IDX dtype .*got int64"):
        write_idx(tmp_path / "a.idx", np.arange(3))
