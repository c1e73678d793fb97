"""Index folders written by contrastlab 0.1 keep opening as a `SearchIndex`: a text index (one vector-index
folder) as the collection "texts"; an image-text index (images/, names/, thumbnails at the top) as "images" and
"names", an image run's (images only) with labels. The old layouts are written here by hand, as 0.1 wrote them."""
from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from contrastlab.search import IndexFolderError, VectorIndex, open_index
from contrastlab.search.folders import _write_index_files
from contrastlab.search.querying import search_folder


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (value, value, value)).save(buf, format="PNG")
    return buf.getvalue()


def _fingerprint(data: bytes) -> dict:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write_v1_image_text(folder, *, names: bool):
    """0.1's image-text layout: meta.json (format contrastlab-image-text-index), images/ and names/ (plain vector
    folders), thumbnails.bin + thumbnails.json at the top, every file's checksum in meta.json."""
    folder.mkdir()
    files, collections = {}, {}
    parts = {"images": VectorIndex.build(np.eye(3) + 0.1, ["a", "b", "c"], texts=["cat", "dog", "cat"])}
    if names:
        parts["names"] = VectorIndex.build(np.eye(3)[:2] + 0.1, ["a", "b"], texts=["cat", "dog"])
    for target, index in parts.items():
        (folder / target).mkdir()
        files[f"{target}/meta.json"] = _fingerprint(_write_index_files(index, folder / target))
        collections[target] = index.count
    pngs = [_png(v) for v in (0, 128, 255)]
    blob = b"".join(pngs)
    offsets = (json.dumps({"offsets": [int(o) for o in np.cumsum([0] + [len(p) for p in pngs])]}) + "\n").encode()
    (folder / "thumbnails.bin").write_bytes(blob)
    (folder / "thumbnails.json").write_bytes(offsets)
    files["thumbnails.bin"], files["thumbnails.json"] = _fingerprint(blob), _fingerprint(offsets)
    meta = {"format": "contrastlab-image-text-index", "format_version": 1, "embedder": "runs/old",
            "modality": "image_text" if names else "image", "collections": collections, "files": files}
    (folder / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("names", [True, False])
def test_an_image_text_index_of_contrastlab_0_1_opens_with_its_collections_and_thumbnails(tmp_path, names):
    write_v1_image_text(tmp_path / "old", names=names)
    index = open_index(tmp_path / "old")
    assert index.names == (("images", "names") if names else ("images",))
    assert index.queries == (("text", "image") if names else ("image",))
    images = index.collection("images")
    assert images.modality == "image" and images.text_field == ("text" if names else "label")
    assert images.ids == ["a", "b", "c"] and images.texts == ["cat", "dog", "cat"]
    assert np.asarray(Image.open(io.BytesIO(images.thumbnail(1))))[0, 0].tolist() == [128, 128, 128]
    assert index.meta["embedder"] == "runs/old"
    q = (np.eye(3)[2:] + 0.1)                                                   # row "c" exactly
    assert images.search(q, 1)[1] == [["c"]]
    index.save(tmp_path / "new")                                                # rewritten in the new format
    again = open_index(tmp_path / "new")
    assert again.names == index.names and again.collection("images").thumbnails.data == images.thumbnails.data
    assert json.loads((tmp_path / "new" / "meta.json").read_text())["format"] == "contrastlab-search-index"


def test_a_text_index_of_contrastlab_0_1_answers_a_query(tmp_path):
    class Letters:
        dim = 3

        def encode(self, texts, *, batch_size=256):
            return np.array([[t.count(c) + 0.1 for c in "abc"] for t in texts], dtype=np.float32)
    VectorIndex.build(Letters().encode(["aaa", "bbb"]), ["1", "2"], texts=["aaa", "bbb"],
                      embedder="runs/old").save(tmp_path / "old")               # 0.1's text index: this folder
    index = open_index(tmp_path / "old")
    assert index.names == ("texts",) and index.meta["embedder"] == "runs/old"
    assert [(d, t) for _, d, t in search_folder(tmp_path / "old", "bb", k=1, embedder=Letters())] == [("2", "bbb")]


def test_a_broken_old_folder_says_to_rebuild(tmp_path):
    write_v1_image_text(tmp_path / "old", names=True)
    meta = json.loads((tmp_path / "old" / "meta.json").read_text())
    meta["collections"] = {"pictures": 3}
    (tmp_path / "old" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(IndexFolderError, match="'collections' must name 'images' and optionally 'names', got "
                                               r"\{'pictures': 3\}; rebuild the index with `contrastlab index`"):
        open_index(tmp_path / "old")
    meta["format"] = "someone-else"
    (tmp_path / "old" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(IndexFolderError, match="is not the meta file of a contrastlab index"):
        open_index(tmp_path / "old")
