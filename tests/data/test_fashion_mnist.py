"""Fashion-MNIST: the real Debian files (shapes, label counts, pixels against a numpy parse), the
search order, the download path (served from a file:// URL) and its errors."""

import gzip
import hashlib

import numpy as np
import pytest
import torch

from contrastlab.data import fashion_mnist as fm
from contrastlab.data import load_images, write_idx

REAL = fm.SYSTEM_DIR
needs_real = pytest.mark.skipif(not all((REAL / f).is_file() for f in fm.FILES.values()),
                                reason=f"Fashion-MNIST files absent from {REAL}: apt-get install dataset-fashion-mnist")


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("fm-cache")))
        mp.delenv("CONTRASTLAB_DATA", raising=False)
        first = load_images("fashion-mnist")
        second = load_images("fmnist")                                  # from the .npy cache
    return first, second


def numpy_parse(name, offset):
    return np.frombuffer(gzip.open(REAL / name).read(), np.uint8, offset=offset)


@needs_real
def test_real_files_shapes_dtypes_and_counts(real):
    d, _ = real
    assert d.name == "fashion-mnist" and d.classes == fm.CLASSES and d.num_classes == 10
    assert d.x.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert d.x.dtype == d.x_test.dtype == torch.uint8 and d.x.is_contiguous()
    assert d.y.dtype == d.y_test.dtype == torch.int64
    assert d.y.bincount().tolist() == [6000] * 10
    assert d.y_test.bincount().tolist() == [1000] * 10
    assert d.classes[0] == "T-shirt/top" and d.classes[9] == "Ankle boot"
    assert any(str(REAL) in n for n in d.notes)


@needs_real
def test_real_pixels_and_labels_match_a_numpy_parse(real):
    d, cached = real
    np.testing.assert_array_equal(d.x_test.numpy().reshape(-1), numpy_parse("t10k-images-idx3-ubyte.gz", 16))
    np.testing.assert_array_equal(d.y.numpy(), numpy_parse("train-labels-idx1-ubyte.gz", 8))
    assert (cached.x == d.x).all() and (cached.y_test == d.y_test).all()


def fake_folder(path, n=4, seed=0):
    """The four files with tiny arrays (enough for the search and download paths)."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    for key, name in fm.FILES.items():
        shape = (n, 28, 28) if key.startswith("x") else (n,)
        write_idx(path / name, rng.integers(0, 10, shape, dtype=np.uint8))
    return path


@pytest.fixture
def no_system(monkeypatch, tmp_path):
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "no-debian-here")


def test_search_order(tmp_path, monkeypatch, private_cache, no_system):
    root, env = fake_folder(tmp_path / "root"), fake_folder(tmp_path / "env" / "fashion-mnist")
    system, cache = fake_folder(tmp_path / "system"), fake_folder(private_cache / "fashion-mnist")
    monkeypatch.setenv("CONTRASTLAB_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(fm, "SYSTEM_DIR", system)
    assert fm.find_fashion_mnist(str(root)) == root
    assert fm.find_fashion_mnist(None) == env
    (env / fm.FILES["y_test"]).unlink()                                 # incomplete: falls through
    assert fm.find_fashion_mnist(None) == system
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "gone")
    assert fm.find_fashion_mnist(None) == cache


def serve(monkeypatch, tmp_path):
    """A file:// 'server' holding the four files, with MD5s registered for them."""
    site = fake_folder(tmp_path / "site", seed=3)
    monkeypatch.setattr(fm, "URL", site.as_uri() + "/")
    monkeypatch.setattr(fm, "MD5", {n: hashlib.md5((site / n).read_bytes()).hexdigest() for n in fm.FILES.values()})
    return site


def test_download_into_cache(tmp_path, monkeypatch, private_cache, no_system):
    site = serve(monkeypatch, tmp_path)
    found = fm.find_fashion_mnist(None)
    assert found == private_cache / "fashion-mnist"
    for name in fm.FILES.values():
        assert (found / name).read_bytes() == (site / name).read_bytes()
    assert sorted(p.name for p in found.iterdir()) == sorted(fm.FILES.values())   # no temp files left


def test_download_md5_mismatch_saves_nothing(tmp_path, monkeypatch, private_cache, no_system):
    serve(monkeypatch, tmp_path)
    monkeypatch.setitem(fm.MD5, fm.FILES["x"], "0" * 32)
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte.gz has MD5 [0-9a-f]{32}, expected 0{32}"):
        fm.find_fashion_mnist(None)
    assert not (private_cache / "fashion-mnist" / fm.FILES["x"]).exists()


def test_download_failure_says_where_it_looked(tmp_path, monkeypatch, private_cache, no_system):
    monkeypatch.setattr(fm, "URL", (tmp_path / "offline").as_uri() + "/")
    root = tmp_path / "partial"
    root.mkdir()
    (root / fm.FILES["x"]).write_bytes(b"")
    with pytest.raises(FileNotFoundError) as info:
        load_images("fashion-mnist", root=str(root))
    msg = str(info.value)
    for part in (f"root {root}: missing train-labels-idx1-ubyte.gz", "$CONTRASTLAB_DATA/fashion-mnist: not set",
                 f"{tmp_path / 'no-debian-here'}: no such folder", str(private_cache / "fashion-mnist"),
                 f"download from {fm.URL} failed", "apt-get install dataset-fashion-mnist"):
        assert part in msg


def test_download_can_be_switched_off(tmp_path, monkeypatch, no_system):
    serve(monkeypatch, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"downloading is switched off"):
        fm.find_fashion_mnist(None, download=False)


def test_official_url_and_names():
    assert fm.URL == "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    assert set(fm.MD5) == set(fm.FILES.values())


def test_damaged_file_is_named(tmp_path, no_system):
    root = fake_folder(tmp_path / "root")
    good = (root / fm.FILES["x"]).read_bytes()
    (root / fm.FILES["x"]).write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: truncated or corrupt gzip file.*damaged"):
        load_images("fashion-mnist", root=str(root))


def test_wrong_shapes_are_refused(tmp_path, no_system):
    root = fake_folder(tmp_path / "root")
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: Fashion-MNIST `x` must be uint8 of shape "
                                         r"\(60000, 28, 28\), got uint8 of shape \(4, 28, 28\)"):
        load_images("fashion-mnist", root=str(root))
