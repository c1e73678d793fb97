"""Hugging Face datasets on disk (`hf:PATH`): datasets written with `datasets` itself (save_to_disk, to_parquet) from
PNGs whose pixels are known (the reference), read back row by row; labels, splits, unreadable rows, bad inputs."""

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image as HFImage, Value
from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
from PIL import Image

from contrastlab.data import load_images
from .conftest import SIDE, png_bytes, random_images
from contrastlab.data.stream import batches, is_source

NAMES = ["zebra", "ant", "moth"]                       # ClassLabel order, not sorted: the codes keep it


@pytest.fixture(autouse=True)
def quiet_datasets():
    was = are_progress_bars_disabled()
    disable_progress_bars()
    yield
    if not was:
        enable_progress_bars()




def _dataset(arrays, labels=None, *, names=NAMES, encoded=None):
    images = [{"bytes": png_bytes(a) if encoded is None else encoded(i, png_bytes(a)), "path": None}
              for i, a in enumerate(arrays)]
    if labels is None:
        return Dataset.from_dict({"image": images}, features=Features({"image": HFImage()}))
    return Dataset.from_dict({"image": images, "label": labels},
                             features=Features({"image": HFImage(), "label": ClassLabel(names=names)}))


def _chw(a):
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _match(loaded: torch.Tensor, arrays) -> list[int]:
    index = {_chw(a).tobytes(): i for i, a in enumerate(arrays)}
    return [index[img.numpy().tobytes()] for img in loaded]


def _check_split(d, arrays, truth, n_train, n_test):
    assert d.x.shape == (n_train, 3, SIDE, SIDE) and d.x_test.shape == (n_test, 3, SIDE, SIDE)
    train, test = _match(d.x[:], arrays), _match(d.x_test[:], arrays)
    assert sorted(train + test) == list(range(len(arrays))) and train == sorted(train)
    for rows, y in ((train, d.y), (test, d.y_test)):
        assert [d.classes[c] for c in y.tolist()] == [truth[i] for i in rows]
    return train, test


@pytest.mark.parametrize("form", ["save_to_disk", "parquet_file", "parquet_folder"])
def test_pixels_labels_and_the_held_out_split(tmp_path, form):
    arrays = random_images(60)
    codes = [i % 3 for i in range(60)]
    ds = _dataset(arrays, codes)
    if form == "save_to_disk":
        path = tmp_path / "ds"
        ds.save_to_disk(str(path))
    elif form == "parquet_file":
        path = tmp_path / "data.parquet"
        ds.to_parquet(str(path))
    else:
        path = tmp_path / "pq"
        path.mkdir()
        ds.select(range(25)).to_parquet(str(path / "part-0.parquet"))
        ds.select(range(25, 60)).to_parquet(str(path / "part-1.parquet"))
    for stream in (False, True):
        d = load_images(f"hf:{path}", stream=stream)
        assert d.streamed is stream and d.classes == ("zebra", "ant", "moth")
        _check_split(d, arrays, [NAMES[c] for c in codes], 50, 10)
        assert sorted(d.y_test.bincount().tolist()) == [3, 3, 4]
        assert d.notes[0] == "60 rows, images from column 'image', labels from 'label'"
        assert any("held out 10 of 60 images" in n for n in d.notes)


def test_a_dataset_dict_keeps_its_train_and_test_splits(tmp_path):
    arrays = random_images(40, seed=1)
    codes = [i % 3 for i in range(40)]
    DatasetDict(train=_dataset(arrays[:30], codes[:30]), test=_dataset(arrays[30:], codes[30:]),
                validation=_dataset(arrays[:3], codes[:3])).save_to_disk(str(tmp_path / "dd"))
    mem = load_images(f"hf:{tmp_path / 'dd'}", stream=False)
    st = load_images(f"hf:{tmp_path / 'dd'}", stream=True)
    for d in (mem, st):
        train, test = _check_split(d, arrays, [NAMES[c] for c in codes], 30, 10)
        assert train == list(range(30)) and test == list(range(30, 40))                  # no hold-out
        assert "train / test split from the dataset: 30 / 10 images" in d.notes
        assert "ignored split 'validation'" in d.notes
    assert torch.equal(st.x_test[:], mem.x_test) and torch.equal(st.y_test, mem.y_test)
    assert st.x_test.describe(st.x_test.positions([2])[0]) == "row 2 of 'test'"


def test_train_only_dict_gray_unlabelled_binary_column(tmp_path):
    arrays = random_images(20, seed=2, gray=True)
    DatasetDict(train=_dataset(arrays, [i % 2 for i in range(20)])).save_to_disk(str(tmp_path / "dd"))
    d = load_images(f"hf:{tmp_path / 'dd'}")
    assert d.x.shape == (17, 1, SIDE, SIDE) and len(d.x_test) == 3                        # held out like folders
    raw = Dataset.from_dict({"img": [png_bytes(a) for a in arrays], "caption": ["x"] * 20},
                            features=Features({"img": Value("binary"), "caption": Value("string")}))
    raw.save_to_disk(str(tmp_path / "raw"))
    d = load_images(f"hf:{tmp_path / 'raw'}")
    assert d.y is None and d.x_test is None and d.x.shape == (20, 1, SIDE, SIDE)
    np.testing.assert_array_equal(d.x.numpy()[:, 0], np.stack(arrays))


def test_a_single_other_split_and_plain_parquet_struct_images(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    arrays = random_images(6, seed=7)
    DatasetDict(valid=_dataset(arrays)).save_to_disk(str(tmp_path / "one"))
    d = load_images(f"hf:{tmp_path / 'one'}")
    assert "used the only split, 'valid', as the training set" in d.notes
    np.testing.assert_array_equal(d.x.numpy(), np.stack([_chw(a) for a in arrays]))
    table = pa.table({"img": pa.array([{"bytes": png_bytes(a), "path": None} for a in arrays]),  # no HF metadata
                      "label": pa.array(["b", "a", "b", "a", "b", "a"])})
    pq.write_table(table, str(tmp_path / "plain.parquet"))
    d = load_images(f"hf:{tmp_path / 'plain.parquet'}")
    assert d.classes == ("a", "b") and d.x.shape == (5, 3, SIDE, SIDE)
    _check_split(d, arrays, ["b", "a", "b", "a", "b", "a"], 5, 1)


def test_string_and_int_label_columns(tmp_path):
    arrays = random_images(12, seed=3)
    names = ["moth", "ant"] * 6
    Dataset.from_dict({"image": [{"bytes": png_bytes(a), "path": None} for a in arrays], "labels": names},
                      features=Features({"image": HFImage(), "labels": Value("string")})
                      ).save_to_disk(str(tmp_path / "s"))
    d = load_images(f"hf:{tmp_path / 's'}", stream=True)
    assert d.classes == ("ant", "moth")                                                    # sorted, as folders
    _check_split(d, arrays, names, 10, 2)
    Dataset.from_dict({"image": [{"bytes": png_bytes(a), "path": None} for a in arrays], "label_id": [7, 3] * 6},
                      features=Features({"image": HFImage(), "label_id": Value("int64")})
                      ).save_to_disk(str(tmp_path / "i"))
    d = load_images(f"hf:{tmp_path / 'i'}")
    assert d.classes == ("3", "7")
    _check_split(d, arrays, ["7", "3"] * 6, 10, 2)


def test_image_paths_mixed_sizes_equal_a_folder_of_the_same_files(tmp_path):
    rng = np.random.default_rng(4)
    sizes = [(14, 10), (12, 12), (9, 16), (20, 11), (12, 13)]                              # (H, W)
    (tmp_path / "f").mkdir()
    files = []
    for i, (h, w) in enumerate(sizes):
        files.append(str(tmp_path / "f" / f"{i}.png"))
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(files[-1])
    Dataset.from_dict({"image": [{"bytes": None, "path": p} for p in files]},             # stored as paths
                      features=Features({"image": HFImage()})).save_to_disk(str(tmp_path / "ds"))
    folder = load_images(f"folder:{tmp_path / 'f'}")
    for stream in (False, True):
        d = load_images(f"hf:{tmp_path / 'ds'}", stream=stream)
        assert d.x.shape == (5, 3, 11, 11) and torch.equal(d.x[:], folder.x)


def test_streamed_reads_in_worker_processes_equal_the_in_memory_load(tmp_path):
    arrays = random_images(60, seed=5)
    _dataset(arrays, [i % 3 for i in range(60)]).save_to_disk(str(tmp_path / "ds"))
    mem = load_images(f"hf:{tmp_path / 'ds'}", stream=False)
    st = load_images(f"hf:{tmp_path / 'ds'}", stream=True)
    assert is_source(st.x) and not is_source(mem.x)
    assert torch.equal(torch.cat(list(batches(st.x, 8, workers=2))), mem.x)
    assert torch.equal(st.x[torch.tensor([9, 1, 9])], mem.x[[9, 1, 9]]) and torch.equal(st.y, mem.y)


def test_unreadable_rows_are_counted_alike(tmp_path):
    arrays = random_images(30, seed=6)
    broken = {4: b"not a png", 11: None}                                    # garbage; truncated (below)

    def encoded(i, data):
        return data[:60] if i == 11 else broken.get(i, data)
    _dataset(arrays, [i % 3 for i in range(30)], encoded=encoded).save_to_disk(str(tmp_path / "ds"))
    mem = load_images(f"hf:{tmp_path / 'ds'}", stream=False)
    st = load_images(f"hf:{tmp_path / 'ds'}", stream=True)
    for d in (mem, st):
        assert len(d.x) + len(d.x_test) == 28
        assert "skipped 2 unreadable images: row 4, row 11" in d.notes, d.notes
        kept = _match(d.x[:], arrays) + _match(d.x_test[:], arrays)
        assert sorted(kept) == [i for i in range(30) if i not in (4, 11)]
    assert torch.equal(st.x[:], mem.x) and torch.equal(st.y, mem.y)


def test_mostly_unreadable_is_refused(tmp_path):
    _dataset(random_images(5), encoded=lambda i, data: data if i < 2 else data[:60]).save_to_disk(str(tmp_path / "ds"))
    for stream in (False, True):
        with pytest.raises(ValueError, match=r"hf:.*ds: 3 of 5 images are unreadable \(more than half\), refusing to "
                                             r"continue; e\.g\. row 2: .*Unreadable: row 2, row 3, row 4"):
            load_images(f"hf:{tmp_path / 'ds'}", stream=stream)


def test_bad_inputs_have_clear_messages(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Hugging Face dataset not found: .*missing"):
        load_images(f"hf:{tmp_path / 'missing'}")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match=r"notes\.txt: expected a folder written by save_to_disk, a \.parquet file "
                                         r"or a folder of \.parquet files"):
        load_images(f"hf:{tmp_path / 'notes.txt'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: not a saved Hugging Face dataset \(no dataset_dict\.json or "
                                         r"state\.json\) and no \.parquet files in it"):
        load_images(f"hf:{tmp_path / 'empty'}")
    Dataset.from_dict({"text": ["a", "b"], "score": [0.5, 1.0]}).save_to_disk(str(tmp_path / "text"))
    with pytest.raises(ValueError, match=r"no image column; expected a datasets\.Image feature or a binary column "
                                         r"named image, img, pixel_values; columns: text \(Value\('string'\)\), "
                                         r"score \(Value\('float64'\)\)"):
        load_images(f"hf:{tmp_path / 'text'}")
    arrays = random_images(4)
    images = [{"bytes": png_bytes(a), "path": None} for a in arrays]
    Dataset.from_dict({"image": images, "label": [0.5, 1.5, 0.5, 1.5]},
                      features=Features({"image": HFImage(), "label": Value("float32")})
                      ).save_to_disk(str(tmp_path / "float"))
    with pytest.raises(ValueError, match=r"the label column 'label' must be a ClassLabel or hold ints or strings, "
                                         r"got Value\('float32'\)"):
        load_images(f"hf:{tmp_path / 'float'}")
    _dataset(arrays, [0, -1, 1, 0]).save_to_disk(str(tmp_path / "some"))
    with pytest.raises(ValueError, match=r"labels are all or none, but row 1 has no 'label' while row 0 has one "
                                         r"\(0\)"):
        load_images(f"hf:{tmp_path / 'some'}")
    DatasetDict(valid=_dataset(arrays), extra=_dataset(arrays)).save_to_disk(str(tmp_path / "nosplit"))
    with pytest.raises(ValueError, match=r"a DatasetDict needs a 'train' split \(and optionally 'test'\), got "
                                         r"splits 'valid', 'extra'"):
        load_images(f"hf:{tmp_path / 'nosplit'}")
    DatasetDict(train=_dataset(arrays, [0, 1, 0, 1]), test=_dataset(arrays)).save_to_disk(str(tmp_path / "differ"))
    with pytest.raises(ValueError, match=r"the 'test' split's columns differ from 'train''s"):
        load_images(f"hf:{tmp_path / 'differ'}")
    _dataset(arrays).select([]).to_parquet(str(tmp_path / "norows.parquet"))
    with pytest.raises(ValueError, match=r"hf:.*norows\.parquet: `datasets` could not read it \("):
        load_images(f"hf:{tmp_path / 'norows.parquet'}")


def test_an_empty_store_is_refused():
    from contrastlab.data.encoded import load_encoded

    class Empty:
        name = "hf:/data/empty"

        def __len__(self):
            return 0
    with pytest.raises(ValueError, match=r"hf:/data/empty: no images \(the dataset is empty\)"):
        load_encoded(Empty(), labels=None, classes=None)
