"""Streamed image folders: a source reads like the tensor an in-memory load gives (the reference), unreadable files
are counted the same way in both modes, and prefetching never changes what is read."""
import numpy as np
import pytest
import torch
from PIL import Image

from contrastlab.data import limits, load_images
from contrastlab.data.stream import ImageSource, UnreadableImage, batches, is_source, prefetching, take


def _folder(root, n_per_class=9, classes=("a", "b", "c"), size=(10, 8), seed=0):
    rng = np.random.default_rng(seed)
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(n_per_class):
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_streamed_folder_equals_the_in_memory_load(tmp_path):
    root = _folder(tmp_path / "photos")
    mem = load_images(f"folder:{root}", stream=False)
    st = load_images(f"folder:{root}", stream=True)
    assert not mem.streamed and st.streamed and is_source(st.x) and is_source(st.x_test)
    assert st.x.shape == mem.x.shape and st.x_test.shape == mem.x_test.shape
    assert torch.equal(st.y, mem.y) and torch.equal(st.y_test, mem.y_test) and st.classes == mem.classes
    assert torch.equal(st.x[torch.arange(len(st.x))], mem.x)
    assert torch.equal(st.x_test[:], mem.x_test)
    assert any("streamed from disk" in n for n in st.notes)


def test_source_indexing_follows_tensor_indexing(tmp_path):
    root = _folder(tmp_path / "p")
    mem = load_images(f"folder:{root}", stream=False).x
    x = load_images(f"folder:{root}", stream=True).x
    mask = torch.zeros(len(mem), dtype=torch.bool)
    mask[[1, 4, 5]] = True
    for key in (slice(2, 9, 3), torch.tensor([5, 0, 5, -1]), [3, 2], np.array([7]), mask, slice(-3, None)):
        assert torch.equal(x[key], mem[key]), key
    assert torch.equal(x[4], mem[4]) and torch.equal(x[-2], mem[-2])
    sub = x.subset(torch.tensor([9, 3, 11]))
    assert torch.equal(sub[:], mem[[9, 3, 11]]) and torch.equal(sub.subset([2, 0])[:], mem[[11, 9]])
    assert torch.equal(take(mem, [1, 2]), mem[[1, 2]]) and is_source(take(x, [1, 2]))
    n = len(mem)
    with pytest.raises(IndexError, match=f"index {n} is out of range for {n} images"):
        x[torch.tensor([n])]
    with pytest.raises(IndexError, match="integers, slices or boolean masks"):
        x[torch.tensor([0.5])]
    with pytest.raises(ValueError, match="at least one image"):
        x.subset([])


def test_batches_and_prefetch_read_the_same_images(tmp_path):
    root = _folder(tmp_path / "p")
    mem = load_images(f"folder:{root}", stream=False).x
    x = load_images(f"folder:{root}", stream=True).x
    rng = torch.random.get_rng_state()
    assert torch.equal(torch.cat(list(batches(x, 4, workers=2))), mem)
    assert torch.equal(torch.random.get_rng_state(), rng)           # workers never draw from the global RNG
    assert x.read_ahead == 6                                         # 23 images in batches of 4, all decoded ahead
    x.read_ahead = 0
    order = [torch.tensor([3, 1, 0]), torch.tensor([5, 6, 7]), torch.tensor([2, 9, 4])]
    with prefetching(x, iter(order), workers=2):
        got = [x[order[0]], x[torch.tensor([8])], x[order[1]], x[order[2]]]   # an unexpected read in between
    assert x.read_ahead == 3
    for g, idx in zip(got, [order[0], torch.tensor([8]), order[1], order[2]]):
        assert torch.equal(g, mem[idx])
    assert x._ahead is None                                          # the workers are gone after the block


def test_unreadable_files_are_left_out_alike_and_counted(tmp_path):
    root = _folder(tmp_path / "p")
    (root / "a" / "0.png").write_bytes(b"not a png")                # fails at the header
    good = (root / "b" / "3.png").read_bytes()
    (root / "b" / "3.png").write_bytes(good[:60])                    # a truncated file: header fine, pixels not
    mem = load_images(f"folder:{root}", stream=False)
    st = load_images(f"folder:{root}", stream=True)
    assert len(mem.x) + len(mem.x_test) == 25 == len(st.x) + len(st.x_test)
    skipped = [n for n in st.notes if n.startswith("skipped 2 unreadable image files")]
    assert skipped and "a/0.png" in skipped[0] and "b/3.png" in skipped[0]
    assert torch.equal(st.x[:], mem.x) and torch.equal(st.y, mem.y)
    again = load_images(f"folder:{root}", stream=True)               # the check is cached: same answer
    assert again.notes == st.notes and torch.equal(again.x[:], mem.x)


def test_a_mostly_unreadable_streamed_folder_is_refused(tmp_path):
    root = _folder(tmp_path / "p", n_per_class=3, classes=("a",))
    for i in range(2):
        data = (root / "a" / f"{i}.png").read_bytes()
        (root / "a" / f"{i}.png").write_bytes(data[:60])
    with pytest.raises(ValueError, match=r"2 of 3 image files are unreadable \(more than half\)"):
        load_images(f"folder:{root}", stream=True)


def test_a_file_that_breaks_after_loading_is_named(tmp_path):
    root = _folder(tmp_path / "p")
    x = load_images(f"folder:{root}", stream=True).x
    name = x.describe(x.positions([3])[0])                          # the 4th training image's file
    (root / name).write_bytes(b"broken")
    with pytest.raises(UnreadableImage, match=rf"{name} could not be read while training"):
        x[[3]]


def test_folders_stream_by_themselves_when_they_would_not_fit(tmp_path, monkeypatch):
    root = _folder(tmp_path / "p")
    monkeypatch.setattr(limits, "available_memory", lambda: 4000)    # 27 images of 3x8x10 = 6,480 bytes
    data = load_images(f"folder:{root}")
    assert data.streamed and any("would not fit in memory" in n for n in data.notes)
    with pytest.raises(ValueError, match=r"stream them with `--set stream=true`"):
        load_images(f"folder:{root}", stream=False)


def test_stream_is_refused_for_datasets_always_in_memory():
    with pytest.raises(ValueError, match=r"`stream` is for datasets read from disk \(folder:.*'digits' is loaded in "
                                         r"memory, got stream=True"):
        load_images("digits", stream=True)
    with pytest.raises(ValueError, match=r"`stream` must be True, False or None .* got 'yes'"):
        load_images("digits", stream="yes")


def test_a_custom_source():
    class Gradient(ImageSource):
        def decode(self, i):
            return np.full((3, 2, 2), 10 * i, dtype=np.uint8)
    x = Gradient(n=5, channels=3, size=(2, 2), name="gradient")
    assert x.shape == (5, 3, 2, 2) and x[torch.tensor([4, 0])][:, 0, 0, 0].tolist() == [40, 0]
    with pytest.raises(ValueError, match="`channels` must be 1 or 3, got 2"):
        Gradient(n=5, channels=2, size=(2, 2), name="bad")
