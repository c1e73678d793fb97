"""Unbounded inputs end in a clear error: over-long lines, deeply nested JSON, images too large for memory, and
labels that leave no stratified split."""
import csv
import json
import warnings

import numpy as np
import torch
import pytest
from PIL import Image

from contrastlab.data import limits, load_images, read_clicks, read_corpus, read_pairs
from contrastlab.data.limits import MAX_IMAGE_SIZE, MAX_LINE_CHARS, check_image_bytes
from contrastlab.data.split import holdout_image_data


def _jsonl(path, rows, extra_lines=()):
    lines = [json.dumps(r) for r in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = [{"query": f"query {i}", "positive": f"doc {i}"} for i in range(10)]


def test_a_line_over_the_limit_names_file_line_limit_and_length(tmp_path):
    long = json.dumps({"query": "q", "positive": "x" * (MAX_LINE_CHARS + 10)})
    path = _jsonl(tmp_path / "pairs.jsonl", GOOD[:2], [long] + [json.dumps(r) for r in GOOD[2:]])
    with pytest.raises(ValueError, match=rf"pairs.jsonl line 3: {len(long):,} characters, more than the limit of "
                                         rf"{MAX_LINE_CHARS:,} characters per line"):
        read_pairs(path)
    corpus = _jsonl(tmp_path / "corpus.jsonl", [{"id": 1, "text": "a"}],
                    [json.dumps({"id": 2, "text": "y" * (MAX_LINE_CHARS + 1)})])
    with pytest.raises(ValueError, match="corpus.jsonl line 2: .* characters, more than the limit"):
        read_corpus(corpus)
    clicks = _jsonl(tmp_path / "clicks.jsonl", [], [json.dumps({"query": "q", "clicked": ["z" * MAX_LINE_CHARS]})])
    with pytest.raises(ValueError, match="clicks.jsonl line 1: .* characters, more than the limit"):
        read_clicks(clicks)


def test_csv_records_up_to_the_limit_are_read_and_longer_ones_refused(tmp_path):
    path = tmp_path / "pairs.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["query", "positive"])
        w.writerows([r["query"], r["positive"]] for r in GOOD)
        w.writerow(["a long one", "x" * 200_000])             # over csv's own default field limit (131,072)
    data = read_pairs(path)
    assert "x" * 200_000 in data.train.positives + (data.test.corpus if data.test else [])
    with open(path, "a", newline="") as f:
        csv.writer(f).writerow(["too long", "x" * (MAX_LINE_CHARS + 1)])
    with pytest.raises(ValueError, match="pairs.csv line 13: .* characters, more than the limit"):
        read_pairs(path)
    assert csv.field_size_limit() == 131072                    # the module-wide setting is left as it was


def test_deeply_nested_json_is_a_malformed_line_not_a_crash(tmp_path):
    path = _jsonl(tmp_path / "nested.jsonl", GOOD, ["[" * 100_000])
    with pytest.warns(UserWarning, match=r"nested.jsonl: skipped 1 of 11 lines: line 11: invalid JSON \(nested "
                                         r"too deeply"):
        data = read_pairs(path)
    assert len(data.train) == 10
    inner = json.dumps({"query": "q", "positive": "p"})[:-1] + ', "negatives": ' + "[" * 100_000 + "}"
    path = _jsonl(tmp_path / "inner.jsonl", GOOD, [inner])
    with pytest.warns(UserWarning, match="line 11: invalid JSON"):
        read_pairs(path)
    csv_path = tmp_path / "nested.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["query", "positive", "negatives"])
        w.writerows([r["query"], r["positive"], "[]"] for r in GOOD)
        w.writerow(["q", "p", "[" * 100_000])
    with pytest.warns(UserWarning, match="line 12: field 'negatives' .*nested too deeply"):
        read_pairs(csv_path)


def test_image_size_has_a_hard_cap_and_a_memory_check(monkeypatch):
    with pytest.raises(ValueError, match=rf"`image_size` must be at most {MAX_IMAGE_SIZE} pixels on a side, got "
                                         r"100000x100000"):
        load_images("digits", image_size=100_000)
    with pytest.raises(ValueError, match=r"`image_size`: 1,797 images of 1x512x512 need 471.1 MB, more than 50% of "
                                         r"the 100.0 MB of memory available"):
        monkeypatch.setattr(limits, "available_memory", lambda: 100_000_000)
        load_images("digits", image_size=512)
    assert load_images("digits", image_size=16).image_size == (16, 16)        # small enough: fine
    check_image_bytes("`x`", n=4, channels=3, size=(8, 8), available=None)
    with pytest.raises(ValueError, match="batch_size"):
        check_image_bytes("`image_size`", n=512, channels=3, size=256, bytes_per_value=4, what="views in a batch",
                          available=10 ** 8)


def test_a_folder_too_large_for_memory_is_streamed_or_refused_before_reading(tmp_path, monkeypatch):
    for i in range(6):
        Image.new("L", (40, 40), i).save(tmp_path / f"{i}.png")
    monkeypatch.setattr(limits, "available_memory", lambda: 10_000)
    with pytest.raises(ValueError, match=r"6 images of 1x40x40 need 9.6 KB, more than 50% of the 10.0 KB"):
        load_images(f"folder:{tmp_path}", stream=False)
    streamed = load_images(f"folder:{tmp_path}")                   # by default: read from disk on demand instead
    assert streamed.streamed and torch.equal(streamed.x[:][:, 0, 0, 0], torch.arange(6, dtype=torch.uint8))
    with pytest.raises(ValueError, match="at most 1024 pixels"):
        load_images(f"folder:{tmp_path}", image_size=2000)


def test_all_distinct_labels_give_no_split_and_a_warning():
    x = np.zeros((60, 1, 4, 4), np.uint8)
    with pytest.warns(UserWarning, match=r"every label of `y` is distinct \(60 images, 60 classes\)"):
        data = holdout_image_data("toy", x, np.arange(60), tuple(str(i) for i in range(60)))
    assert data.x_test is None and len(data) == 60
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        holdout_image_data("toy", x, np.arange(60) % 2, ("a", "b"))             # an ordinary split: no warning
