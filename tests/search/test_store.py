"""Saving and loading an index folder: round trips, atomic replacement, and a clear error for each bad folder."""
from __future__ import annotations

import json

import numpy as np
import pytest

from contrastlab.search import IndexFolderError, VectorIndex, load_index, save_index

from .helpers import clustered


@pytest.fixture(scope="module")
def vectors():
    return clustered(600, 12, seed=3)


@pytest.fixture
def saved(tmp_path, vectors):
    index = VectorIndex.build(vectors, [f"d{i}" for i in range(600)], texts=[f"text {i} é" for i in range(600)],
                              embedder="/runs/simcse")
    index.save(tmp_path / "idx")
    return index, tmp_path / "idx"


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_round_trip_keeps_results_texts_and_meta(tmp_path, vectors, kind):
    ids = [f"d{i}" for i in range(600)]
    index = VectorIndex.build(vectors, ids, texts=[f"t{i}" for i in range(600)], kind=kind, embedder="run-a",
                              recall_queries=200)
    save_index(index, tmp_path / "idx")
    back = load_index(tmp_path / "idx")
    assert (back.kind, back.count, back.dim, back.ids) == (kind, 600, 12, ids)
    assert back.texts == [f"t{i}" for i in range(600)]
    assert back.meta == index.meta and back.meta["embedder"] == "run-a"
    q = vectors[:5] + 0.01
    for a, b in zip(index.search(q, 7), back.search(q, 7)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    allowed = ids[::7]                                       # filtered search reads the stored vectors back
    for a, b in zip(index.search(q, 4, allowed_ids=allowed), back.search(q, 4, allowed_ids=allowed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_allclose(back.vectors_at(np.array([3, 599])), vectors[[3, 599]], atol=1e-6)
    meta = json.loads((tmp_path / "idx" / "meta.json").read_text())
    assert {"dim", "count", "kind", "recall", "embedder", "build_seconds", "contrastlab_version"} <= set(meta)


def test_an_index_without_texts(tmp_path):
    save_index(VectorIndex.build(np.eye(2), ["a", "b"]), tmp_path / "i")
    assert load_index(tmp_path / "i").texts is None


def test_replacing_an_index_leaves_no_temporary_folders(saved, tmp_path):
    _, folder = saved
    VectorIndex.build(np.eye(3), ["x", "y", "z"]).save(folder)
    assert load_index(folder).ids == ["x", "y", "z"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_refuses_to_replace_a_folder_that_is_not_an_index(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(IndexFolderError, match="exists and is not a contrastlab index folder"):
        VectorIndex.build(np.eye(2), ["a", "b"]).save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def _flip_byte(path, at):
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, message", [
    (lambda f: None, None),
    (lambda f: (f / "index.faiss").unlink(), "incomplete: index.faiss is missing"),
    (lambda f: (f / "docs.jsonl").unlink(), "incomplete: docs.jsonl is missing"),
    (lambda f: (f / "meta.json").unlink(), "is not a contrastlab index folder: meta.json is missing"),
    (lambda f: (f / "meta.json").write_text("{not json"), "is not valid JSON"),
    (lambda f: (f / "meta.json").write_text('{"format": "other"}'), "its 'format' is 'other'"),
    (lambda f: (f / "index.faiss").write_bytes((f / "index.faiss").read_bytes()[:1000]),
     "has 1000 bytes but meta.json says"),
    (lambda f: _flip_byte(f / "index.faiss", 500), "index.faiss does not match the SHA-256"),
    (lambda f: _flip_byte(f / "docs.jsonl", 3), "docs.jsonl does not match the SHA-256"),
])
def test_a_damaged_folder_gives_a_clear_error(saved, damage, message):
    index, folder = saved
    damage(folder)
    if message is None:
        assert load_index(folder).ids == index.ids
    else:
        with pytest.raises(IndexFolderError) as e:
            load_index(folder)
        assert message in str(e.value)


def test_faiss_rejecting_the_file_and_inconsistent_counts_are_reported(saved):
    import hashlib
    _, folder = saved
    meta = json.loads((folder / "meta.json").read_text())
    garbage = b"not a faiss index" * 10
    (folder / "index.faiss").write_bytes(garbage)
    meta["files"]["index.faiss"] = {"bytes": len(garbage), "sha256": hashlib.sha256(garbage).hexdigest()}
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(IndexFolderError, match="cannot be read by faiss"):
        load_index(folder)


def test_missing_folder_and_a_file_instead_of_a_folder(tmp_path):
    with pytest.raises(IndexFolderError, match="does not exist"):
        load_index(tmp_path / "nowhere")
    (tmp_path / "f").write_text("x")
    with pytest.raises(IndexFolderError, match="is a file, not an index folder"):
        load_index(tmp_path / "f")


def test_meta_that_disagrees_with_the_files_is_reported(saved):
    _, folder = saved
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "count": 599}))
    with pytest.raises(IndexFolderError, match="inconsistent: meta.json says 599 vectors of dimension 12, the "
                                               "faiss index holds 600"):
        load_index(folder)
    (folder / "meta.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(IndexFolderError, match="format version 99"):
        load_index(folder)
