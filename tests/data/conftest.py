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
