"""The dataset registry: names, aliases, path forms, the generic resize, and errors."""

import numpy as np
import pytest
import torch

from contrastlab.data import ImageData, list_datasets, load_images, register_dataset
from contrastlab.data import registry


@pytest.fixture
def fresh(monkeypatch):
    """A copy of the registry, so toy loaders do not leak into other tests."""
    monkeypatch.setattr(registry, "DATASETS", dict(registry.DATASETS))


def toy(path, *, root, image_size):
    x = torch.full((4, 1, 6, 10), 50, dtype=torch.uint8)
    return ImageData(f"toy:{path}", x, None, None, None, None, notes=(f"root={root}",))


def test_builtins_registered():
    assert {"fashion-mnist", "digits", "npz", "folder"} <= set(list_datasets())


def test_names_aliases_and_case(fresh):
    register_dataset("toy", aliases=("toy-alias",))(toy)
    assert load_images("toy").name == "toy:None"
    assert load_images(" TOY-Alias ", root="/r").notes == ("root=/r",)


def test_path_forms(fresh):
    register_dataset("ext", takes_path=True, suffixes=(".ext",))(toy)
    assert load_images("ext:some/where.bin").name == "toy:some/where.bin"
    assert load_images("Data/File.EXT").name == "toy:Data/File.EXT"
    with pytest.raises(ValueError, match=r"`spec` 'ext:' names no path after 'ext:'"):
        load_images("ext:")


def test_generic_resize_with_note(fresh):
    register_dataset("toy")(toy)
    d = load_images("toy", image_size=3)
    assert d.x.shape == (4, 1, 3, 3) and (d.x == 50).all()
    assert d.notes[-1] == "resized from 6x10 to 3x3 (shorter side, centre crop, bilinear)"


def test_digits_resize_applies_to_test_split_too():
    d = load_images("digits", image_size=16)
    assert d.x.shape[1:] == d.x_test.shape[1:] == (1, 16, 16)


def test_duplicate_and_bad_names(fresh):
    with pytest.raises(ValueError, match=r"an image dataset named 'digits' is already registered"):
        register_dataset("digits")
    with pytest.raises(ValueError, match=r"an image dataset named 'fmnist' is already registered"):
        register_dataset("new", aliases=("fmnist",))
    for bad in ("Upper", "a:b", ""):
        with pytest.raises(ValueError, match=r"dataset names must be non-empty lower-case str without ':'"):
            register_dataset(bad)


def test_unknown_spec_lists_names_and_forms(tmp_path):
    with pytest.raises(ValueError) as info:
        load_images("imagenet")
    msg = str(info.value)
    assert "got 'imagenet'" in msg and "fashion-mnist (alias fmnist)" in msg and "digits" in msg
    for form in ("npz:PATH", "PATH.npz", "folder:PATH"):
        assert form in msg
    with pytest.raises(ValueError, match=r"is a folder: did you mean 'folder:"):
        load_images(str(tmp_path))


@pytest.mark.parametrize("kw, exc, msg", [
    (dict(spec=""), ValueError, r"`spec` must be a non-empty str, got ''"),
    (dict(spec=3), ValueError, r"`spec` must be a non-empty str, got 3"),
    (dict(spec="digits", image_size=0), ValueError, r"`image_size` must be a positive int or None, got 0"),
    (dict(spec="digits", image_size=2.5), ValueError, r"`image_size` must be a positive int or None, got 2.5"),
    (dict(spec="digits", image_size=True), ValueError, r"`image_size` must be a positive int or None, got True"),
    (dict(spec="digits", root=3), TypeError, r"`root` must be a str path or None, got int"),
])
def test_bad_arguments(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        load_images(**kw)


def test_npz_bare_suffix_is_case_insensitive(tmp_path):
    p = tmp_path / "a.npz"
    np.savez(p, x=np.zeros((2, 3, 3), np.uint8))
    upper = p.rename(tmp_path / "A.NPZ")
    assert load_images(str(upper)).x.shape == (2, 1, 3, 3)
