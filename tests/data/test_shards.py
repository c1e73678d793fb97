"""WebDataset shards (`shards:PATTERN`): shards written with webdataset's own TarWriter from PNGs whose pixels are
known (the reference), read back by random access; labels, the split, unreadable members and every bad input."""
import io
import json
import tarfile

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from contrastlab.data import load_images
from .conftest import SIDE, png_bytes, random_images
from contrastlab.data.stream import UnreadableImage, batches, is_source





def _shards(root, arrays, labels=None, *, per_shard=20, label_ext="cls", prefix="train"):
    """Write `arrays` as PNG members (keys s-iii) into shards of `per_shard` samples; returns the brace pattern."""
    root.mkdir(parents=True, exist_ok=True)
    count = -(-len(arrays) // per_shard)
    for s in range(count):
        with wds.TarWriter(str(root / f"{prefix}-{s:03d}.tar")) as sink:
            for i in range(s * per_shard, min(len(arrays), (s + 1) * per_shard)):
                sample = {"__key__": f"{s}-{i:03d}", "png": png_bytes(arrays[i])}
                if labels is not None and labels[i] is not None:
                    sample[label_ext] = labels[i]
                sink.write(sample)
    return f"{root}/{prefix}-{{000..{count - 1:03d}}}.tar"


def _chw(a):
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _match(loaded: torch.Tensor, arrays) -> list[int]:
    """Which written image each loaded image is (each must equal one exactly)."""
    index = {_chw(a).tobytes(): i for i, a in enumerate(arrays)}
    return [index[img.numpy().tobytes()] for img in loaded]


@pytest.mark.parametrize("label_ext, write, classes", [
    ("cls", lambda c: c, ("0", "1", "2")),                                            # ints keep their order
    ("txt", lambda c: ["zebra", "ant", "moth"][c], ("ant", "moth", "zebra")),         # names sorted
    ("json", lambda c: json.dumps({"label": ["zebra", "ant", "moth"][c]}), ("ant", "moth", "zebra")),
    ("json", lambda c: json.dumps(["zebra", "ant", "moth"][c]), ("ant", "moth", "zebra")),
])
def test_pixels_labels_and_the_held_out_split(tmp_path, label_ext, write, classes):
    arrays = random_images(60)
    truth = [i % 3 for i in range(60)]
    pattern = _shards(tmp_path / "s", arrays, [write(c) for c in truth], label_ext=label_ext)
    for stream in (False, True):
        d = load_images(f"shards:{pattern}", stream=stream)
        assert d.streamed is stream and d.classes == classes
        assert d.x.shape == (50, 3, SIDE, SIDE) and d.x_test.shape == (10, 3, SIDE, SIDE)
        train, test = _match(d.x[:], arrays), _match(d.x_test[:], arrays)
        assert sorted(train + test) == list(range(60)) and train == sorted(train)   # every image once, in order
        for rows, y in ((train, d.y), (test, d.y_test)):
            for i, code in zip(rows, y.tolist()):
                want = str(truth[i]) if label_ext == "cls" else ["zebra", "ant", "moth"][truth[i]]
                assert d.classes[code] == want, i
        assert sorted(d.y_test.bincount().tolist()) == [3, 3, 4]                       # stratified
        assert d.notes[0] == "3 shards, 60 samples"
        assert any("held out 10 of 60 images" in n for n in d.notes)


def test_gray_unlabelled_glob_keeps_shard_order(tmp_path):
    arrays = random_images(25, seed=1, gray=True)
    _shards(tmp_path / "g", arrays, per_shard=10)
    d = load_images(f"shards:{tmp_path}/g/*.tar")
    assert d.y is None and d.x_test is None and d.classes is None and not d.streamed
    assert d.x.shape == (25, 1, SIDE, SIDE)
    np.testing.assert_array_equal(d.x.numpy()[:, 0], np.stack(arrays))


def test_the_first_image_member_of_a_sample_is_used(tmp_path):
    arrays = random_images(4, seed=9)
    with wds.TarWriter(str(tmp_path / "a.tar")) as sink:
        for i, a in enumerate(arrays):
            other = Image.fromarray(255 - a)
            buf = io.BytesIO()
            other.save(buf, format="BMP")
            sink.write({"__key__": f"k{i}", "bmp": buf.getvalue(), "png": png_bytes(a)})         # png before bmp
    d = load_images(f"shards:{tmp_path}/a.tar::{tmp_path}/a.tar")                        # named twice: read once
    np.testing.assert_array_equal(d.x.numpy(), np.stack([_chw(a) for a in arrays]))
    assert "4 sample(s) hold more than one image member: used the first of jpg, jpeg, png, webp, bmp" in d.notes


def test_same_images_as_a_folder_of_the_same_files_mixed_sizes(tmp_path):
    rng = np.random.default_rng(2)
    sizes = [(14, 10), (12, 12), (9, 16), (20, 11), (12, 13)]                          # (H, W)
    arrays = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    (tmp_path / "f").mkdir()
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(tmp_path / "f" / f"{i}.png")
    pattern = _shards(tmp_path / "s", arrays)
    folder = load_images(f"folder:{tmp_path / 'f'}")
    for stream in (False, True):
        d = load_images(f"shards:{pattern}", stream=stream)
        assert d.x.shape == (5, 3, 11, 11)                                              # the median shorter side
        assert torch.equal(d.x[:], folder.x)
        assert any("resized to 11x11 (shorter side, centre crop, bilinear)" in n for n in d.notes)
    sized = load_images(f"shards:{pattern}", image_size=8, stream=True)
    assert torch.equal(sized.x[:], load_images(f"folder:{tmp_path / 'f'}", image_size=8).x)


def test_streamed_reads_in_worker_processes_equal_the_in_memory_load(tmp_path):
    arrays = random_images(60, seed=3)
    pattern = _shards(tmp_path / "s", arrays, [i % 2 for i in range(60)], per_shard=7)
    mem = load_images(f"shards:{pattern}", stream=False)
    st = load_images(f"shards:{pattern}", stream=True)
    assert is_source(st.x) and is_source(st.x_test)
    assert torch.equal(torch.cat(list(batches(st.x, 8, workers=2))), mem.x)           # forked workers, own handles
    assert torch.equal(st.x[torch.tensor([7, 0, 33, 7])], mem.x[[7, 0, 33, 7]])
    assert torch.equal(st.y, mem.y) and torch.equal(st.x_test[:], mem.x_test)
    assert st.x.describe(0) == f"{tmp_path}/s/train-000.tar: 0-000.png"


def test_shards_stream_by_themselves_when_they_would_not_fit(tmp_path, monkeypatch):
    from contrastlab.data import limits
    pattern = _shards(tmp_path / "s", random_images(30, seed=8))
    monkeypatch.setattr(limits, "available_memory", lambda: 20000)   # 30 images of 3x12x12 = 12,960 bytes
    d = load_images(f"shards:{pattern}")
    assert d.streamed and any("would not fit in memory" in n for n in d.notes)
    with pytest.raises(ValueError, match=r"stream them with `--set stream=true`"):
        load_images(f"shards:{pattern}", stream=False)


def test_unreadable_members_are_counted_alike(tmp_path):
    arrays = random_images(30, seed=4)
    labels = [i % 3 for i in range(30)]
    (tmp_path / "s").mkdir()
    with wds.TarWriter(str(tmp_path / "s" / "a.tar")) as sink:
        for i, a in enumerate(arrays):
            data = png_bytes(a)
            if i == 4:
                data = b"not a png"                                                    # fails at the header
            if i == 11:
                data = data[:60]                                                       # header fine, pixels not
            sink.write({"__key__": f"k{i:02d}", "png": data, "cls": labels[i]})
        sink.write({"__key__": "lonely", "cls": 1})                                    # no image member
    mem = load_images(f"shards:{tmp_path}/s/a.tar", stream=False)
    st = load_images(f"shards:{tmp_path}/s/a.tar", stream=True)
    for d in (mem, st):
        assert len(d.x) + len(d.x_test) == 28
        skipped = [n for n in d.notes if n.startswith("skipped 2 unreadable images")]
        assert skipped and "a.tar: k04.png" in skipped[0] and "a.tar: k11.png" in skipped[0], d.notes
        assert any(n.startswith("ignored 1 sample(s) without an image member") and "lonely" in n for n in d.notes)
        kept = _match(d.x[:], arrays) + _match(d.x_test[:], arrays)
        assert sorted(kept) == [i for i in range(30) if i not in (4, 11)]
    assert torch.equal(st.x[:], mem.x) and torch.equal(st.y, mem.y)
    again = load_images(f"shards:{tmp_path}/s/a.tar", stream=True)                      # the check is cached
    assert again.notes == st.notes and torch.equal(again.x[:], mem.x)


def test_a_shard_that_breaks_after_loading_is_named(tmp_path):
    pattern = _shards(tmp_path / "s", random_images(20, seed=5))
    x = load_images(f"shards:{pattern}", stream=True).x
    (tmp_path / "s" / "train-000.tar").write_bytes(b"")
    with pytest.raises(UnreadableImage, match=r"train-000\.tar: 0-003\.png could not be read while training"):
        x[[3]]


def _raw_tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_bad_inputs_have_clear_messages(tmp_path):
    img = png_bytes(random_images(1)[0])
    with pytest.raises(FileNotFoundError, match=r"shards:.*nothing-\{0\.\.3\}\.tar: the pattern matches no file"):
        load_images(f"shards:{tmp_path}/nothing-{{0..3}}.tar")
    with pytest.raises(FileNotFoundError, match=r"shards:.*\*\.tar: the pattern matches no file"):
        load_images(f"shards:{tmp_path}/*.tar")
    pattern = _shards(tmp_path / "two", random_images(10), per_shard=5)                     # 2 shards exist
    with pytest.raises(FileNotFoundError, match=r"2 of the 4 shards the pattern names do not exist: .*train-002\.tar"):
        load_images(f"shards:{pattern.replace('001}', '003}')}")
    mixed = _shards(tmp_path / "mixed", random_images(6), [0, 1, None, 0, 1, 0])
    with pytest.raises(ValueError, match=r"labels are all or none, but .*train-000\.tar: 0-002\.png has no label "
                                         r"member \(\.cls, \.json or \.txt\) while .*0-000\.png has one \(0\)"):
        load_images(f"shards:{mixed}")
    kinds = _shards(tmp_path / "kinds", random_images(4), [json.dumps(3), json.dumps("cat"), "3", "1"], label_ext="json")
    with pytest.raises(ValueError, match=r"labels must all be ints or all class names, got the int 3 for "
                                         r".*0-000\.png and the name 'cat' for .*0-001\.png"):
        load_images(f"shards:{kinds}")
    _raw_tar(tmp_path / "badcls.tar", [("a.png", img), ("a.cls", b"seven")])
    with pytest.raises(ValueError, match=r"badcls\.tar: a\.cls must hold an int class, got 'seven'"):
        load_images(f"shards:{tmp_path}/badcls.tar")
    _raw_tar(tmp_path / "badjson.tar", [("a.png", img), ("a.json", b"{nope")])
    with pytest.raises(ValueError, match=r"badjson\.tar: a\.json is not valid JSON"):
        load_images(f"shards:{tmp_path}/badjson.tar")
    _raw_tar(tmp_path / "listjson.tar", [("a.png", img), ("a.json", b"[1, 2]")])
    with pytest.raises(ValueError, match=r"listjson\.tar: a\.json must hold a class name, an int or "
                                         r"\{\"label\": \.\.\.\}, got '\[1, 2\]'"):
        load_images(f"shards:{tmp_path}/listjson.tar")
    _raw_tar(tmp_path / "dup.tar", [("a.png", img), ("a.png", img)])
    with pytest.raises(ValueError, match=r"dup\.tar: two members of one sample have the same extension"):
        load_images(f"shards:{tmp_path}/dup.tar")
    _raw_tar(tmp_path / "text.tar", [("a.txt", b"cat"), ("b.txt", b"dog")])
    with pytest.raises(ValueError, match=r"no images found in 1 shard; expected samples with a "
                                         r"\.jpg/\.jpeg/\.png/\.webp/\.bmp member"):
        load_images(f"shards:{tmp_path}/text.tar")
    with wds.TarWriter(str(tmp_path / "z.tar.gz"), compress=True) as sink:
        sink.write({"__key__": "a", "png": img})
    with pytest.raises(ValueError, match=r"z\.tar\.gz: not an uncompressed tar file .*shards must be plain \.tar"):
        load_images(f"shards:{tmp_path}/z.tar.gz")
    with pytest.raises(ValueError, match=r"`shards:PATTERN` needs a pattern of tar files"):
        load_images("shards: ")


def test_mostly_unreadable_shards_are_refused(tmp_path):
    arrays = random_images(5)
    (tmp_path / "s").mkdir()
    with wds.TarWriter(str(tmp_path / "s" / "a.tar")) as sink:
        for i, a in enumerate(arrays):
            sink.write({"__key__": f"k{i}", "png": png_bytes(a) if i < 2 else png_bytes(a)[:60]})
    for stream in (False, True):
        with pytest.raises(ValueError, match=r"shards:.*a\.tar: 3 of 5 images are unreadable \(more than half\), "
                                             r"refusing to continue; e\.g\. .*a\.tar: k2\.png: "):
            load_images(f"shards:{tmp_path}/s/a.tar", stream=stream)
