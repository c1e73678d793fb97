"""Image folders: class sub-folders, flat folders, mixed sizes and modes, unreadable files."""

import numpy as np
import pytest
import torch
from PIL import Image

from contrastlab.data import load_images


def png(path, mode, size, color):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, **({"lossless": True} if path.suffix == ".webp" else {}))
    return path


def load(path, **kw):
    return load_images(f"folder:{path}", **kw)


def test_class_folders(tmp_path):
    colors = {}
    for c, cls in enumerate(("dog", "cat", "bird")):                      # labels = sorted names
        for i in range(6):
            colors[(cls, i)] = (40 * c, 10 * i, 7)
            png(tmp_path / cls / f"{i}.png", "RGB", (10, 12), colors[(cls, i)])
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    d = load(tmp_path)
    assert d.classes == ("bird", "cat", "dog") and d.name == f"folder:{tmp_path}"
    assert d.x.shape == (15, 3, 12, 10) and d.x_test.shape == (3, 3, 12, 10)
    assert d.y_test.bincount().tolist() == [1, 1, 1]
    for xs, ys in ((d.x, d.y), (d.x_test, d.y_test)):                    # each image has its folder's label
        for img, label in zip(xs, ys):
            r, g, b = img[:, 0, 0].tolist()
            cls = ("dog", "cat", "bird")[r // 40]
            assert d.classes[label] == cls and (img == img[:, :1, :1]).all()
    assert any("ignored folders without images: empty" in n for n in d.notes)


def test_flat_folder_gray_pixels_exact(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (7, 9), dtype=np.uint8) for _ in range(5)]
    for i, a in enumerate(arrays):
        Image.fromarray(a, "L").save(tmp_path / f"img{i}.png")
    (tmp_path / ".hidden.png").write_bytes(b"junk")
    d = load(tmp_path)
    assert d.y is None and d.x_test is None and d.classes is None and d.notes == ()
    assert d.x.shape == (5, 1, 7, 9)
    np.testing.assert_array_equal(d.x.numpy()[:, 0], np.stack(arrays))


def test_mixed_sizes_resize_to_median_shorter_side(tmp_path):
    sizes = {"a.png": (20, 30), "b.png": (40, 40), "c.bmp": (50, 30), "d.webp": (31, 33)}
    for i, (name, size) in enumerate(sizes.items()):
        png(tmp_path / name, "RGB", size, (10 * i, 200, 50))
    d = load(tmp_path)
    assert int(np.median([20, 40, 30, 31])) == 30
    assert d.x.shape == (4, 3, 30, 30)
    for i, img in enumerate(d.x):                                       # constant images stay constant
        assert (img[0] == 10 * i).all() and (img[1] == 200).all() and (img[2] == 50).all()
    assert any("resized to 30x30" in n for n in d.notes)
    assert load(tmp_path, image_size=16).x.shape == (4, 3, 16, 16)


def test_auto_size_is_capped(tmp_path):
    png(tmp_path / "a.png", "L", (200, 200), 9)
    png(tmp_path / "b.png", "L", (300, 250), 9)
    assert load(tmp_path).x.shape == (2, 1, 96, 96)


def test_centre_crop_keeps_the_middle(tmp_path):
    stripes = np.zeros((30, 60, 3), np.uint8)
    stripes[:, :15] = (255, 0, 0)
    stripes[:, 15:45] = (0, 255, 0)
    stripes[:, 45:] = (0, 0, 255)
    Image.fromarray(stripes).save(tmp_path / "wide.png")
    d = load(tmp_path, image_size=30)
    assert d.x.shape == (1, 3, 30, 30)
    assert (d.x[0, 1] == 255).all() and (d.x[0, 0] == 0).all() and (d.x[0, 2] == 0).all()


def test_mixed_gray_and_rgb_become_rgb(tmp_path):
    png(tmp_path / "g.png", "L", (8, 8), 77)
    png(tmp_path / "c.jpg", "RGB", (8, 8), (0, 0, 0))
    d = load(tmp_path)
    assert d.x.shape == (2, 3, 8, 8)
    assert (d.x[1] == 77).all()                                         # gray replicated in R, G and B
    assert any("all converted to RGB" in n for n in d.notes)


def test_gray_modes_stay_one_channel(tmp_path):
    png(tmp_path / "a.png", "1", (6, 6), 1)
    png(tmp_path / "b.png", "LA", (6, 6), (100, 0))
    Image.fromarray(np.full((6, 6), 257 * 100, np.uint16)).save(tmp_path / "c.png")   # 16-bit gray
    d = load(tmp_path)
    assert d.x.shape == (3, 1, 6, 6)
    assert d.x[:, 0, 0, 0].tolist() == [255, 100, 100]


def test_alpha_is_dropped(tmp_path):
    png(tmp_path / "a.png", "RGBA", (5, 5), (10, 20, 30, 0))
    d = load(tmp_path)
    assert d.x.shape == (1, 3, 5, 5) and d.x[0, :, 2, 2].tolist() == [10, 20, 30]


def test_exif_orientation_applied(tmp_path):
    im = Image.new("RGB", (20, 10), (90, 90, 90))
    exif = Image.Exif()
    exif[0x0112] = 6                                                    # rotate 90 degrees on display
    im.save(tmp_path / "rot.jpg", exif=exif)
    assert load(tmp_path).x.shape == (1, 3, 20, 10)


def write_bad(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG not really")
    good = tmp_path / "tmp.jpg"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(good)
    (tmp_path / "b.jpg").write_bytes(good.read_bytes()[:60])             # truncated JPEG
    good.unlink()


def test_unreadable_files_are_counted(tmp_path):
    for i in range(4):
        png(tmp_path / f"ok{i}.png", "RGB", (6, 6), (i, i, i))
    write_bad(tmp_path)
    d = load(tmp_path)
    assert len(d.x) == 4
    assert "skipped 2 unreadable image files: a.png, b.jpg" in d.notes


def test_mostly_unreadable_is_refused(tmp_path):
    png(tmp_path / "ok.png", "RGB", (6, 6), (0, 0, 0))
    write_bad(tmp_path)
    with pytest.raises(ValueError, match=r"2 of 3 image files are unreadable \(more than half\).*a.png.*b.jpg"):
        load(tmp_path)


def test_class_with_only_unreadable_files_is_dropped(tmp_path):
    for cls in ("a", "b"):
        for i in range(3):
            png(tmp_path / cls / f"{i}.png", "L", (4, 4), 5)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.png").write_bytes(b"junk")
    d = load(tmp_path)
    assert d.classes == ("a", "b") and any("dropped classes" in n and "c" in n for n in d.notes)


def test_no_images(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match=r"no images found; expected one sub-folder per class"):
        load(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"image folder not found: .*nope"):
        load(tmp_path / "nope")


def test_progress_bar_over_threshold(tmp_path, monkeypatch, capsys):
    for i in range(3):
        png(tmp_path / f"{i}.png", "L", (4, 4), i)
    from contrastlab.data import encoded
    monkeypatch.setattr(encoded, "PROGRESS_OVER", 2)
    load(tmp_path)
    assert "reading images" in capsys.readouterr().err
    monkeypatch.setattr(encoded, "PROGRESS_OVER", 3)
    load(tmp_path)
    assert "reading images" not in capsys.readouterr().err


def test_dtypes(tmp_path):
    for i in range(6):
        png(tmp_path / ("a" if i % 2 else "b") / f"{i}.png", "L", (4, 4), i)
    d = load(tmp_path)
    assert d.x.dtype == torch.uint8 and d.y.dtype == torch.int64 and d.x.is_contiguous()
