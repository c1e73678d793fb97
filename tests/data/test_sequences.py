"""Sequence data: the container's checks, the series: file loaders and the UCR/UEA .ts reader on every bad input,
the z-normalisation against numpy, and the shipped UCR/UEA datasets (when aeon's wheel is installed)."""
import numpy as np
import pytest
import torch

from contrastlab.data import SequenceData, dataset_modality, load_sequences
from contrastlab.data.sequences import normalize_series
from contrastlab.data.ucr import read_ts, ucr_folder


def _data(**kw):
    args = dict(name="toy", x=torch.zeros(4, 1, 5), y=None, x_test=None, y_test=None, classes=None)
    return SequenceData(**{**args, **kw})


@pytest.mark.parametrize("kw, message", [
    (dict(x=torch.zeros(4, 5)), r"`x` must have shape \(N, C, T\), got a 2-d"),
    (dict(x=torch.zeros(4, 1, 5, dtype=torch.int64)), "`x` must be floating point"),
    (dict(x=torch.zeros(4, 1, 0)), "`x` must not be empty"),
    (dict(x=torch.tensor([[[0.0, 1.0]], [[float("nan"), 1.0]]])), r"NaN or inf in 1 series \(first: row 1\)"),
    (dict(x_test=torch.zeros(2, 2, 5)), r"`x_test` must have the same \(C, T\) as `x`, \(1, 5\), got \(2, 5\)"),
    (dict(y=torch.tensor([0, 1, 0, 1]), x_test=torch.zeros(2, 1, 5)), "`y_test` must be given"),
    (dict(y=torch.tensor([0, 1, 0])), r"`y` must have shape \(N,\) = \(4,\)"),
    (dict(classes=("a",)), "`classes` must be None when `y` is None"),
])
def test_sequence_data_refuses_bad_fields(kw, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _data(**kw)


def test_constant_series_are_fine_and_normalise_to_zero():
    x = np.full((3, 2, 7), 4.0)
    xs, _, note = normalize_series(x, None, "series")
    assert np.array_equal(xs, np.zeros_like(xs)) and "per series" in note
    SequenceData("c", torch.from_numpy(xs), None, None, None, None)


def test_normalisation_matches_numpy():
    rng = np.random.default_rng(0)
    x, xt = rng.normal(3, 2, (5, 2, 9)), rng.normal(1, 4, (3, 2, 9))
    s, st, _ = normalize_series(x, xt, "series")
    ref = (xt - xt.mean(2, keepdims=True)) / xt.std(2, keepdims=True)
    np.testing.assert_allclose(st, ref, rtol=1e-5, atol=1e-5)
    c, ct, _ = normalize_series(x, xt, "channel")
    mean, std = x.transpose(1, 0, 2).reshape(2, -1).mean(1), x.transpose(1, 0, 2).reshape(2, -1).std(1)
    np.testing.assert_allclose(ct, (xt - mean[None, :, None]) / std[None, :, None], rtol=1e-5, atol=1e-5)
    assert normalize_series(x, None, "auto")[2] == normalize_series(x, None, "channel")[2]
    with pytest.raises(ValueError, match="`normalize` must be one of auto, series, channel, none, got 'z'"):
        normalize_series(x, None, "z")


def test_specs_name_sequence_data_without_taking_image_or_text_suffixes():
    assert dataset_modality("ucr:ArrowHead") == "sequence"
    assert dataset_modality("series:a.npz") == dataset_modality("series:a.csv") == "sequence"
    assert dataset_modality("a.npz") == "image" and dataset_modality("a.csv") == "text"
    with pytest.raises(ValueError, match="names image data .* load it with load_images"):
        load_sequences("digits")


# -------------------------------------------------------------------------------------------------- npz
def test_npz_of_univariate_and_multivariate_series(tmp_path):
    rng = np.random.default_rng(1)
    p = tmp_path / "u.npz"
    np.savez(p, x=rng.normal(size=(12, 30)), y=np.array([3, 7] * 6))
    d = load_sequences(f"series:{p}", normalize="none")
    assert d.x.shape == (10, 1, 30) and d.x_test.shape == (2, 1, 30) and d.classes == ("3", "7")
    p = tmp_path / "m.npz"
    np.savez(p, x=rng.normal(size=(6, 3, 20)), x_test=rng.normal(size=(2, 3, 20)))
    d = load_sequences(f"series:{p}")
    assert d.x.shape == (6, 3, 20) and d.y is None and d.x_test.shape == (2, 3, 20)


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.array([[0.0, 1.0], [np.nan, 2.0]])), r"row 1 holds NaN \(at time step 0\)"),
    (dict(x=np.array([[0.0, 1.0], [1.0, np.inf]])), r"row 1 holds inf \(at time step 1\)"),
    (dict(x=np.zeros((3, 0))), "row 0 has zero length"),
    (dict(x=np.zeros((3, 2, 5)), x_test=np.zeros((2, 3, 5))), r"test series of shape \(C, T\) = \(3, 5\)"),
    (dict(x=np.zeros((4, 5)), y=np.array([0.0, 1.0, np.nan, 1.0])), r"`y` has no label in row 2 \(1 of 4"),
    (dict(y=np.zeros(3)), "missing array `x`"),
    (dict(x=np.zeros(5)), r"`x` must have shape \(N, T\) or \(N, C, T\)"),
])
def test_npz_bad_inputs_name_the_file_and_row(tmp_path, arrays, message):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(ValueError, match=message) as e:
        load_sequences(f"series:{p}")
    assert "bad.npz" in str(e.value)


# ------------------------------------------------------------------------------------------- csv, parquet
def test_csv_with_labels_and_split(tmp_path):
    p = tmp_path / "s.csv"
    rows = ["label,split,t0,t1,t2"] + [f"{'ab'[i % 2]},{'train' if i < 6 else 'test'},{i},{i + 1},{i * 2}"
                                      for i in range(8)]
    p.write_text("\n".join(rows) + "\n")
    d = load_sequences(f"series:{p}", normalize="none")
    assert d.x.shape == (6, 1, 3) and d.x_test.shape == (2, 1, 3) and d.classes == ("a", "b")
    assert d.x[1, 0].tolist() == [1.0, 2.0, 2.0] and d.y.tolist() == [0, 1, 0, 1, 0, 1]


def test_parquet_one_series_per_row(tmp_path):
    import pandas as pd
    p = tmp_path / "s.parquet"
    pd.DataFrame({"t0": [1.0, 2.0, 3.0], "t1": [0.0, 1.0, 5.0]}).to_parquet(p)
    d = load_sequences(f"series:{p}", normalize="none")
    assert d.x[:, 0].tolist() == [[1.0, 0.0], [2.0, 1.0], [3.0, 5.0]] and d.x_test is None


@pytest.mark.parametrize("text, message", [
    ("t0,t1,t2\n1,2,3\n4,5,\n", "row 1 has 2 time steps, row 0 has 3; series of unequal length are not padded"),
    ("t0,t1,t2\n1,2,3\n4,,6\n", r"row 1 holds NaN \(at time step 1\)"),
    ("t0,t1,t2\n1,2,3\n,,\n", "row 1 has zero length"),
    ("label,t0,t1\na,1,2\n,3,4\nb,5,6\n", r"row 1 has no `label` \(1 of 3 rows\)"),
    ("split,t0\ntrain,1\nvalid,2\n", "row 1 has `split` 'valid'"),
    ("t0,t1\n1,x\n", "must hold numbers"),
])
def test_csv_bad_inputs_name_the_file_and_row(tmp_path, text, message):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(ValueError, match=message) as e:
        load_sequences(f"series:{p}")
    assert "bad.csv" in str(e.value)


def test_series_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="series file not found"):
        load_sequences(f"series:{tmp_path / 'none.npz'}")
    (tmp_path / "a.txt").write_text("1,2")
    with pytest.raises(ValueError, match="reads .npz, .csv or .parquet files, got .txt"):
        load_sequences(f"series:{tmp_path / 'a.txt'}")
    with pytest.raises(ValueError, match="`bogus` is not an option of sequence dataset 'series'"):
        load_sequences(f"series:{tmp_path / 'a.txt'}", bogus=1)


# ------------------------------------------------------------------------------------------------- .ts
HEADER = "@problemName Toy\n@timeStamps false\n@univariate {uni}\n@classLabel true a b\n@data\n"


def _ts(folder, name, train, test=None, uni="true"):
    (folder / f"{name}_TRAIN.ts").write_text(HEADER.format(uni=uni) + train)
    (folder / f"{name}_TEST.ts").write_text(HEADER.format(uni=uni) + (test or train))


def test_ts_files_from_a_root_folder(tmp_path):
    _ts(tmp_path, "Toy", "1,2,3:a\n3,2,1:b\n", "0,0,1:b\n")
    d = load_sequences("ucr:Toy", root=tmp_path, normalize="none")
    assert d.name == "ucr:Toy" and d.x.tolist() == [[[1, 2, 3]], [[3, 2, 1]]] and d.y_test.tolist() == [1]
    _ts(tmp_path, "Multi", "1,2:3,4:a\n5,6:7,8:b\n", uni="false")
    assert load_sequences("ucr:multi", root=tmp_path).x.shape == (2, 2, 2)       # any case


@pytest.mark.parametrize("rows, message", [
    ("1,2,3:a\n1,2:b\n", r"series of unequal length \(2 to 3 time steps; row 1 has 2, row 0 has 3\)"),
    ("1,2:3,4:a\n1,2:b\n", "row 1 has 1 channels, row 0 has 2"),
    ("1,2,3:a\n1,?,3:b\n", r"row 1 holds NaN \(at time step 1\)"),
    ("1,2,3:a\n1,2,3:c\n", r"row 1 has label 'c', not one of the header's @classLabel \['a', 'b'\]"),
    ("1,2,x:a\n", "line 6 .* not a number"),
    ("1,2,3:4:a\n", r"row 0 has channels of unequal length"),
])
def test_ts_bad_inputs_name_the_file_and_row(tmp_path, rows, message):
    _ts(tmp_path, "Bad", rows)
    with pytest.raises(ValueError, match=message) as e:
        load_sequences("ucr:Bad", root=tmp_path)
    assert "Bad_TRAIN.ts" in str(e.value)


def test_ts_missing_files_list_what_there_is(tmp_path):
    _ts(tmp_path, "Toy", "1,2:a\n")
    with pytest.raises(FileNotFoundError, match="no Nope_TRAIN.ts and Nope_TEST.ts under .*; available: Toy"):
        load_sequences("ucr:Nope", root=tmp_path)


def needs_aeon(test):
    """The setup installs aeon's wheel (`scripts/setup.sh`): a test of the shipped data fails, not skips, without it."""
    return test


def test_the_setup_installed_the_shipped_ucr_files():
    assert ucr_folder() is not None, "aeon's wheel (the shipped .ts files) is missing: pip install --no-deps aeon==1.6.0"


@needs_aeon
@pytest.mark.parametrize("name, shape, test, classes", [
    ("ArrowHead", (36, 1, 251), 175, 3), ("ItalyPowerDemand", (67, 1, 24), 1029, 2),
    ("GunPoint", (50, 1, 150), 150, 2), ("OSULeaf", (200, 1, 427), 242, 6), ("BasicMotions", (40, 6, 100), 40, 4),
    ("JapaneseVowels_eq", (270, 12, 25), 370, 9), ("PickupGestureWiimoteZ_eq", (50, 1, 361), 50, 10),
])
def test_the_shipped_ucr_datasets(name, shape, test, classes):
    d = load_sequences(f"ucr:{name}")
    assert tuple(d.x.shape) == shape and len(d.x_test) == test and d.num_classes == classes
    assert torch.isfinite(d.x).all() and abs(float(d.x.mean())) < 1e-3


@needs_aeon
def test_unequal_length_ucr_data_is_refused_with_the_way_out():
    with pytest.raises(ValueError, match="JapaneseVowels_TRAIN.ts: series of unequal length .* NAME_eq"):
        load_sequences("ucr:JapaneseVowels")


def test_read_ts_returns_labels_and_header_classes(tmp_path):
    _ts(tmp_path, "T", "1,2:b\n3,4:a\n")
    x, y, classes = read_ts(tmp_path / "T_TRAIN.ts")
    assert x.shape == (2, 1, 2) and y.tolist() == ["b", "a"] and classes == ("a", "b")
