"""User captions: "captions:PATH", a folder of images with captions.csv / captions.jsonl."""

import hashlib
import json
import os

import pytest
import torch
from PIL import Image

from contrastlab.data import load_image_text

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def image(folder, name, colour=RED, size=(5, 4)):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def jsonl(folder, rows):
    (folder / "captions.jsonl").write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n",
                                           encoding="utf-8")


def csv_file(folder, text):
    (folder / "captions.csv").write_text(text, encoding="utf-8")


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    image(folder, "a.png", RED)
    image(folder, "b.png", GREEN)
    image(folder, "sub/c.png", BLUE)
    return folder


def test_jsonl_good_case_matches_the_hand_written_expectation(photos):
    jsonl(photos, [{"file": "a.png", "caption": "a red square"},
                   {"file": "a.png", "caption": "un cuadrado rojo", "language": "es"},
                   {"file": "a.png", "caption": "a second English caption"},      # extra: dropped, counted
                   {"file": "sub/c.png", "caption": " a blue one ", "language": None},
                   {"file": "./sub/../b.png", "caption": "verde", "language": "es"}])
    data = load_image_text(f"captions:{photos}")
    assert data.ids == ("a.png", "sub/c.png", "b.png")
    assert data.texts == {"en": ["a red square", "a blue one", None], "es": ["un cuadrado rojo", None, "verde"]}
    assert data.images.shape == (3, 3, 4, 5) and data.images.dtype == torch.uint8
    assert data.images[:, :, 0, 0].tolist() == [list(RED), list(BLUE), list(GREEN)]
    assert data.labels is None and data.classes is None and data.modality == "image_text"
    assert data.missing_texts() == {"en": 1, "es": 1}
    assert "kept the first caption per image and language; 1 more were dropped" in data.notes
    assert any("no test split: 3 images (fewer than 20)" in n for n in data.notes)
    assert len(data) == 3 and data.test_indices().tolist() == []


def test_csv_good_case_with_default_language_option(photos):
    csv_file(photos, 'file, caption ,language\na.png,"red, square",\nb.png,green,de\nsub/c.png,blue,fr\n')
    image(photos, "loose.png")                                                   # an image without a caption
    data = load_image_text(f"captions:{photos / 'captions.csv'}", language="pt")
    assert data.ids == ("a.png", "b.png", "sub/c.png")
    assert data.texts == {"pt": ["red, square", None, None], "de": [None, "green", None],
                          "fr": [None, None, "blue"]}
    assert any("ignored 1 image file(s) without a caption: loose.png" in n for n in data.notes)


def test_mixed_sizes_are_resized_like_image_folders(photos):
    image(photos, "big.png", RED, size=(40, 30))
    jsonl(photos, [{"file": n, "caption": n} for n in ("a.png", "b.png", "big.png")])
    data = load_image_text(f"captions:{photos}")
    assert data.images.shape == (3, 3, 4, 4)                                   # median shorter side of 4, 4, 30
    assert load_image_text(f"captions:{photos}", size=6).images.shape == (3, 3, 6, 6)


@pytest.mark.parametrize("row, message", [
    ({"file": "nope.png", "caption": "x"}, r"line 2: file 'nope\.png' not found in "),
    ({"file": "b.png", "caption": "   "}, r"line 2: field 'caption' must be a non-empty string, got '   '"),
    ({"file": "b.png"}, r"line 2: missing field 'caption'"),
    ({"file": "b.png", "caption": 7}, r"line 2: field 'caption' must be a string, got int 7"),
    ({"file": "b.png", "caption": "x", "label": 1}, r"line 2: unknown field 'label'; the fields are file, caption "
                                                    r"and optionally language"),
    ({"file": "../outside.png", "caption": "x"}, r"line 2: field 'file' must be a path inside the folder, "
                                                 r"got '\.\./outside\.png'"),
    ("{not json", r"line 2: invalid JSON"),
])
def test_bad_jsonl_lines_are_skipped_with_their_line_number(photos, row, message):
    image(photos.parent, "outside.png")                                        # exists: refused for being outside
    jsonl(photos, [{"file": "a.png", "caption": "x"}, row, {"file": "sub/c.png", "caption": "z"}])
    with pytest.warns(UserWarning, match=r"captions\.jsonl: skipped 1 of 3 lines: " + message):
        data = load_image_text(f"captions:{photos}")
    assert data.ids == ("a.png", "sub/c.png")


def test_absolute_paths_and_symlinks_out_of_the_folder_are_refused(photos):
    outside = image(photos.parent, "outside.png")
    os.symlink(outside, photos / "link.png")
    jsonl(photos, [{"file": str(outside), "caption": "x"}, {"file": "link.png", "caption": "y"},
                   {"file": "a.png", "caption": "a"}, {"file": "b.png", "caption": "b"},
                   {"file": "sub/c.png", "caption": "c"}])
    with pytest.warns(UserWarning) as caught:
        data = load_image_text(f"captions:{photos}")
    text = str(caught[0].message)
    assert f"line 1: field 'file' must be a path inside the folder, got {str(outside)!r}" in text
    assert "line 2: field 'file' must be a path inside the folder, got 'link.png'" in text
    assert data.ids == ("a.png", "b.png", "sub/c.png")


def test_unreadable_images_are_reported_on_every_line_naming_them(photos):
    (photos / "broken.png").write_bytes(b"not a png at all")
    jsonl(photos, [{"file": "broken.png", "caption": "x"}, {"file": "a.png", "caption": "a"},
                   {"file": "b.png", "caption": "b"}, {"file": "broken.png", "caption": "y", "language": "es"},
                   {"file": "sub/c.png", "caption": "c"}])
    with pytest.warns(UserWarning, match=r"skipped 2 of 5 lines: line 1: file 'broken\.png' is not a readable "
                                         r"image \(UnidentifiedImageError.*; line 4: file 'broken\.png'"):
        data = load_image_text(f"captions:{photos}")
    assert data.ids == ("a.png", "b.png", "sub/c.png") and list(data.texts) == ["en"]


def test_csv_header_and_empty_cells(photos):
    csv_file(photos, "file,caption,label\na.png,x,1\n")
    with pytest.raises(ValueError, match=r"captions\.csv line 1: unknown column 'label'; the columns are file, "
                                         r"caption and optionally language"):
        load_image_text(f"captions:{photos}")
    csv_file(photos, "file,text\na.png,x\n")
    with pytest.raises(ValueError, match=r"captions\.csv line 1: unknown column 'text'"):
        load_image_text(f"captions:{photos}")
    csv_file(photos, "file\na.png\n")
    with pytest.raises(ValueError, match=r"captions\.csv line 1: missing column 'caption'"):
        load_image_text(f"captions:{photos}")
    csv_file(photos, "file,caption\na.png,x\nb.png,\nsub/c.png,z\n")
    with pytest.warns(UserWarning, match=r"skipped 1 of 3 lines: line 3: field 'caption' must be a non-empty "
                                         r"string, got ''"):
        assert load_image_text(f"captions:{photos}").ids == ("a.png", "sub/c.png")


def test_mostly_invalid_files_and_missing_caption_files_are_refused(photos):
    jsonl(photos, [{"file": "a.png", "caption": "x"}, {"file": "gone.png", "caption": "y"},
                   {"file": "../a.png", "caption": "z"}])
    with pytest.raises(ValueError, match=r"captions\.jsonl: refused, 2 of 3 lines are invalid \(more than half\): "
                                         r"line 2: file 'gone\.png' not found"):
        load_image_text(f"captions:{photos}")
    csv_file(photos, "file,caption\na.png,x\n")
    with pytest.raises(ValueError, match=r"expected exactly one captions file \(captions\.csv or captions\.jsonl\), "
                                         r"found both"):
        load_image_text(f"captions:{photos}")
    with pytest.raises(ValueError, match=r"found neither"):
        load_image_text(f"captions:{photos / 'sub'}")
    with pytest.raises(FileNotFoundError, match=r"captions folder not found: .*nowhere"):
        load_image_text(f"captions:{photos / 'nowhere'}")
    with pytest.raises(ValueError, match=r"`size` must be a positive int or None, got 0"):
        load_image_text(f"captions:{photos}", size=0)


def _reference_is_test(name, seed=0):
    digest = hashlib.blake2b(f"{seed}\x1f{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64 < 0.15


def test_split_is_by_file_name_hash_and_ignores_line_order(tmp_path):
    names = [f"img{i:02d}.png" for i in range(40)]
    for i, n in enumerate(names):
        image(tmp_path, n, (i, 0, 0), size=(2, 2))
    jsonl(tmp_path, [{"file": n, "caption": f"picture {n}"} for n in names])
    data = load_image_text(f"captions:{tmp_path}")
    expected = {n for n in names if _reference_is_test(n)}
    assert 0 < len(expected) < 40                                              # the reference holds some out
    assert {data.ids[i] for i in data.test_indices()} == expected
    assert len(data) == 40 - len(expected)
    jsonl(tmp_path, [{"file": n, "caption": f"picture {n}"} for n in reversed(names)])
    again = load_image_text(f"captions:{tmp_path}")
    assert {again.ids[i] for i in again.test_indices()} == expected
    train_captions = set(data.pairs("en")[1])
    assert train_captions.isdisjoint(data.pairs("en", test=True)[1])
