"""npz archives: happy paths against the saved arrays, and one clear error per bad input."""

import math

import numpy as np
import pytest
import torch

from contrastlab.data import load_images

from .conftest import gray_images


def save(tmp_path, name="d.npz", **arrays):
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


def test_gray_unlabelled_keeps_everything(tmp_path):
    x = gray_images(7)
    d = load_images(str(save(tmp_path, x=x)))
    assert d.name == f"npz:{tmp_path / 'd.npz'}"
    assert d.x.shape == (7, 1, 6, 5) and d.x_test is None and d.y is None and d.classes is None
    np.testing.assert_array_equal(d.x.numpy()[:, 0], x)
    assert d.num_classes is None


def test_rgb_channel_last_becomes_channel_first(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    d = load_images(f"npz:{save(tmp_path, 'rgb.npz', x=x)}")
    assert d.x.shape == (4, 3, 6, 5) and d.x.is_contiguous()
    np.testing.assert_array_equal(d.x.numpy(), x.transpose(0, 3, 1, 2))


def test_single_channel_last_axis(tmp_path):
    x = gray_images(3)[..., None]
    assert load_images(str(save(tmp_path, x=x))).x.shape == (3, 1, 6, 5)


def test_labels_remapped_in_sorted_order_and_stratified_holdout(tmp_path):
    y = np.array([10, -3, 7] * 12)                                       # 36 images, 12 per class
    x = np.arange(36, dtype=np.uint8)[:, None, None].repeat(2, 1).repeat(2, 2)   # image i is all i
    d = load_images(str(save(tmp_path, x=x, y=y)))
    assert d.classes == ("-3", "7", "10")
    assert len(d.x_test) == round(36 / 6) == 6 and len(d.x) == 30
    assert d.y_test.bincount().tolist() == [2, 2, 2]
    for xs, ys in ((d.x, d.y), (d.x_test, d.y_test)):                   # each image keeps its own label
        ids = xs[:, 0, 0, 0].long().numpy()
        np.testing.assert_array_equal(np.array(d.classes)[ys.numpy()], y[ids].astype(str))
    assert set(d.x[:, 0, 0, 0].tolist()).isdisjoint(d.x_test[:, 0, 0, 0].tolist())
    assert any("no test split in file" in n and "stratified, seed 0" in n for n in d.notes)


def test_string_labels(tmp_path):
    d = load_images(str(save(tmp_path, x=gray_images(12), y=np.array(["b", "a"] * 6))))
    assert d.classes == ("a", "b") and d.num_classes == 2


def test_x_test_from_file(tmp_path):
    x, xt = gray_images(6), gray_images(3, seed=1)
    d = load_images(str(save(tmp_path, x=x, y=np.array([5, 9] * 3), x_test=xt, y_test=np.array([9, 9, 5]))))
    np.testing.assert_array_equal(d.x_test.numpy()[:, 0], xt)
    assert d.y_test.tolist() == [1, 1, 0] and d.classes == ("5", "9") and len(d.x) == 6
    assert "test split from the file" in d.notes


def test_unlabelled_with_x_test(tmp_path):
    d = load_images(str(save(tmp_path, x=gray_images(4), x_test=gray_images(2))))
    assert d.y is None and d.x_test.shape == (2, 1, 6, 5)


def test_groups_are_held_out_whole(tmp_path):
    group = np.repeat(np.arange(12), 3)                                  # 12 groups of 3
    x = np.arange(36, dtype=np.uint8)[:, None, None].repeat(2, 1).repeat(2, 2)
    d = load_images(str(save(tmp_path, x=x, y=np.arange(36) % 2, group=group * 100)))
    test_groups = set(group[d.x_test[:, 0, 0, 0].long().numpy()].tolist())
    train_groups = set(group[d.x[:, 0, 0, 0].long().numpy()].tolist())
    assert test_groups and train_groups and test_groups.isdisjoint(train_groups)
    assert len(d.x_test) == 6 and d.group.tolist() == sorted(d.group.tolist())
    assert d.group.max() < 12                                           # remapped to 0..G-1


def test_too_few_for_a_holdout(tmp_path):
    d = load_images(str(save(tmp_path, x=gray_images(2), y=np.array([0, 1]))))
    assert d.x_test is None and len(d.x) == 2 and any("too few" in n for n in d.notes)


def test_unknown_arrays_are_noted(tmp_path):
    d = load_images(str(save(tmp_path, x=gray_images(3), extra=np.zeros(2))))
    assert any("ignored arrays ['extra']" in n for n in d.notes)


def test_image_size_resizes(tmp_path):
    x = np.full((3, 8, 12), 77, dtype=np.uint8)
    d = load_images(str(save(tmp_path, x=x)), image_size=4)
    assert d.x.shape == (3, 1, 4, 4) and (d.x == 77).all()


BAD = [
    (dict(y=np.arange(5)), r"missing array `x` \(the images\); the archive has \['y'\]"),
    (dict(x=gray_images(4).astype(np.float32)),
     r"`x` must have dtype uint8, got float32; convert with `x.astype\(np.uint8\)`"),
    (dict(x=gray_images(4) > 100), r"`x` must have dtype uint8, got bool"),
    (dict(x=gray_images(4).astype(np.int64)), r"`x` must have dtype uint8, got int64"),
    (dict(x=np.zeros((4, 30), np.uint8)),
     r"`x` must have shape \(N, H, W\) or \(N, H, W, C\), got a 2-d array of shape \(4, 30\)"),
    (dict(x=np.zeros((4, 6, 5, 4), np.uint8)),
     r"`x` must have C in \{1, 3\} .*got C=4 in shape \(4, 6, 5, 4\); drop alpha"),
    (dict(x=np.zeros((4, 3, 8, 8), np.uint8)), r"`x` .*got C=8 .*channel-first: use `x.transpose\(0, 2, 3, 1\)`"),
    (dict(x=np.zeros((0, 6, 5), np.uint8)), r"`x` must hold at least one non-empty image, got shape \(0, 6, 5\)"),
    (dict(x=gray_images(4), y=np.arange(3)), r"`y` must have shape \(N,\) = \(4,\) like `x`, got \(3,\)"),
    (dict(x=gray_images(4), y=np.array([0.0, 1.5, 2.0, 0.0])),
     r"`y` must hold integer \(or string\) values, got dtype float64"),
    (dict(x=gray_images(4), y=np.array([0.0, math.nan, 1.0, math.nan])), r"`y` contains NaN \(2 of 4 values\)"),
    (dict(x=gray_images(4), y=np.array([True, False, True, False])), r"`y` must hold integer .*got dtype bool"),
    (dict(x=gray_images(4), group=np.arange(5)), r"`group` must have shape \(N,\) = \(4,\) like `x`, got \(5,\)"),
    (dict(x=gray_images(4), x_test=gray_images(2, h=7)),
     r"`x_test` must have the same image shape as `x`, \(C, H, W\) = \(1, 6, 5\), got \(1, 7, 5\)"),
    (dict(x=gray_images(4), x_test=gray_images(2).astype(np.int16)), r"`x_test` must have dtype uint8, got int16"),
    (dict(x=gray_images(4), y=np.arange(4), x_test=gray_images(2)), r"`x_test` needs `y_test` because `y` is given"),
    (dict(x=gray_images(4), x_test=gray_images(2), y_test=np.arange(2)), r"`y_test` needs `y`"),
    (dict(x=gray_images(4), y=np.arange(4), y_test=np.arange(2)), r"`y_test` needs `x_test`, which is missing"),
    (dict(x=gray_images(4), y=np.arange(4), x_test=gray_images(2), y_test=np.array([1, 9])),
     r"`y_test` must only hold labels present in `y`, got \[9\]"),
    (dict(x=gray_images(4), y=np.arange(4), x_test=gray_images(2), y_test=np.arange(3)),
     r"`y_test` must have shape \(N,\) = \(2,\) like `x_test`, got \(3,\)"),
]


@pytest.mark.parametrize("arrays, msg", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_arrays(tmp_path, arrays, msg):
    p = save(tmp_path, **arrays)
    with pytest.raises(ValueError, match=msg) as info:
        load_images(str(p))
    assert str(p) in str(info.value)


def test_object_array_refused_without_pickle(tmp_path):
    p = save(tmp_path, x=gray_images(2), y=np.array([1, "a", None], dtype=object))
    with pytest.raises(ValueError, match=r"`y` is an object array \(pickled Python objects\)"):
        load_images(str(p))


def test_truncated_archive(tmp_path):
    p = save(tmp_path, x=gray_images(50))
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"d.npz: not a readable .npz archive, the file is truncated or corrupt"):
        load_images(str(p))


def test_corrupt_member(tmp_path):
    p = tmp_path / "c.npz"
    np.savez_compressed(p, x=gray_images(200, h=20, w=20))
    raw = bytearray(p.read_bytes())
    raw[200:400] = bytes(200)                                            # inside x's deflate stream
    p.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"c.npz: .*(corrupt|cannot read array `x`)"):
        load_images(str(p))


def test_plain_npy_with_npz_name(tmp_path):
    p = tmp_path / "single.npz"
    with open(p, "wb") as f:
        np.save(f, gray_images(2))
    with pytest.raises(ValueError, match=r"single.npz: expected an .npz archive of named arrays, got a single .npy"):
        load_images(str(p))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"npz file not found: .*nope.npz"):
        load_images(str(tmp_path / "nope.npz"))


def test_result_dtypes(tmp_path):
    d = load_images(str(save(tmp_path, x=gray_images(12), y=np.arange(12, dtype=np.uint8) % 3,
                             group=np.arange(12, dtype=np.int32))))
    assert d.x.dtype == torch.uint8 and d.y.dtype == torch.int64 and d.group.dtype == torch.int64
