"""Every data test caches into its own tmp folder and sees no user data folder."""

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("CONTRASTLAB_DATA", raising=False)
    return cache / "contrastlab"


def gray_images(n, h=6, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w), dtype=np.uint8)


SIDE = 12                    # the encoded-image tests' square side (shards, hf datasets)


def png_bytes(a: np.ndarray) -> bytes:
    """A PNG file of the uint8 array `a` ((H, W) or (H, W, 3))."""
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def random_images(n, seed=0, gray=False):
    """`n` random uint8 SIDE x SIDE images, gray or RGB: the pixels the tests write and expect back."""
    rng = np.random.default_rng(seed)
    shape = (SIDE, SIDE) if gray else (SIDE, SIDE, 3)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]
