"""`contrastlab index --backend milvus`: the same collections as the FAISS folder, in milvus-lite -- the same ranked
hits for texts and images as the FAISS folder and a float64 brute force, the thumbnails kept in the folder, the
folder's record of where the vectors live, and clear errors. Each test has its own milvus-lite database."""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contrastlab.cli.search import add_search_commands
from contrastlab.search import IndexFolderError, open_index
from contrastlab.search.indexing import build_index

from .helpers import HashEmbedder, assert_same_ranking, reference_top_k

REPO = Path(__file__).resolve().parents[2]
DOCS = [f"doc {i} words w{i % 7} w{i % 11} w{i % 13}" for i in range(300)]
IDS = [f"d{i}" for i in range(300)]


def parse(argv):
    parser = argparse.ArgumentParser(prog="contrastlab")
    add_search_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


class MeanColour:
    """Images -> mean colour + 1, normalised (a stand-in image encoder with image_shape)."""

    dim, image_shape, source = 3, (3, 8, 8), "stand-in"

    def encode_images(self, images, *, batch_size=256):
        z = np.asarray(images, np.float64).mean((2, 3)) + 1.0                    # (N, 3)
        return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)


def test_the_index_command_writes_a_corpus_to_milvus_and_search_answers_as_the_faiss_folder(tmp_path, capsys):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in zip(IDS, DOCS)))
    embedder = HashEmbedder(dim=32)
    for out, extra in (("faiss-idx", []), ("milvus-idx", ["--backend", "milvus", "--uri", str(tmp_path / "m.db")])):
        args = parse(["index", "run", "--corpus", str(corpus), "--out", str(tmp_path / out), "--quiet", *extra])
        assert args.handler(args, embedder=embedder) == 0
    assert "vectors in Milvus at " + str(tmp_path / "m.db") in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "milvus-idx" / "texts").iterdir()) == ["backend.json"]
    record = json.loads((tmp_path / "milvus-idx" / "texts" / "backend.json").read_text())
    assert record == {"backend": "milvus", "uri": str(tmp_path / "m.db"), "collection": "milvus_idx_texts",
                      "dim": 32, "count": 300}
    z = embedder.encode(DOCS).astype(np.float64)
    q = embedder.encode(["words w3 w5", "doc 17", "w1 w2 w4"]).astype(np.float64)
    ref_scores, ref_rows = reference_top_k(z, q, 10)
    with open_index(tmp_path / "milvus-idx") as m, open_index(tmp_path / "faiss-idx") as f:
        assert m.meta["backend"] == "milvus" and m.collection("texts").meta["backend"] == "milvus"
        assert m.collection("texts").ids == f.collection("texts").ids == IDS
        assert m.collection("texts").texts == DOCS
        m_scores, m_ids = m.collection("texts").search(q, 10)
        f_scores, f_ids = f.collection("texts").search(q, 10)
        np.testing.assert_allclose(m_scores, f_scores, atol=1e-5)
        assert_same_ranking(m_scores, m_ids, ref_scores, ref_rows, IDS)
        assert_same_ranking(f_scores, f_ids, ref_scores, ref_rows, IDS)
    args = parse(["search", str(tmp_path / "milvus-idx"), "words w3 w5", "-k", "5"])
    assert args.handler(args, embedder=embedder) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    np.testing.assert_allclose([float(line.split()[1]) for line in lines], ref_scores[0, :5], atol=1e-4)


def test_an_image_collection_keeps_its_thumbnails_in_the_folder_and_its_vectors_in_milvus(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (120, 3, 8, 8), dtype=np.uint8)                     # (N, C, H, W)
    ids = [str(i) for i in range(120)]
    labels = [f"class {i % 4}" for i in range(120)]
    index = build_index(MeanColour(), images=x, ids=ids, texts=labels, text_field="label", backend="milvus",
                        uri=str(tmp_path / "m.db"), prefix="pics")
    index.save(tmp_path / "idx")
    index.close()
    with open_index(tmp_path / "idx") as back:
        images = back.collection("images")
        assert images.text_field == "label" and images.texts == labels and back.queries == ("image",)
        assert images.thumbnail(7).startswith(b"\x89PNG")
        z = MeanColour().encode_images(x).astype(np.float64)
        scores, hits = images.search(z[:10], 5)
        ref_scores, ref_rows = reference_top_k(z, z[:10], 5)
        assert_same_ranking(scores, hits, ref_scores, ref_rows, ids)


def test_milvus_needs_a_uri_and_a_moved_collection_is_named(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"--backend milvus needs --uri: a milvus-lite file \(e.g. idx.db\) or a "
                                         r"server \(http://host:19530\)"):
        build_index(HashEmbedder(dim=8), corpus=(["a"], ["x"]), backend="milvus")
    with pytest.raises(ValueError, match="--backend must be one of faiss, milvus, got 'qdrant'"):
        build_index(HashEmbedder(dim=8), corpus=(["a"], ["x"]), backend="qdrant")
    index = build_index(HashEmbedder(dim=8), corpus=(IDS[:20], DOCS[:20]), backend="milvus",
                        uri=str(tmp_path / "m.db"), prefix="p")
    index.save(tmp_path / "idx")
    index.close()
    record = tmp_path / "idx" / "texts" / "backend.json"
    meta = json.loads((tmp_path / "idx" / "meta.json").read_text())
    for change, message in [({"collection": "nope"}, "there is no collection 'nope'"),
                            ({"backend": "pinecone"}, "is kept in backend 'pinecone', which this contrastlab does not "
                                                      "know (it knows milvus)")]:
        data = (json.dumps({**json.loads(record.read_text()), **change}) + "\n").encode()
        saved = record.read_bytes()
        record.write_bytes(data)
        meta["files"]["texts/backend.json"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        (tmp_path / "idx" / "meta.json").write_text(json.dumps(meta))
        with pytest.raises(IndexFolderError, match=re.escape(message)):
            open_index(tmp_path / "idx")
        record.write_bytes(saved)


def test_a_process_that_searched_milvus_exits(tmp_path):
    """milvus-lite runs a server in the process: the CLI lets go of it, so the process ends on its own."""
    code = ("import sys; sys.path.insert(0, sys.argv[2]); from tests.search.helpers import HashEmbedder; "
            "from contrastlab.search.indexing import build_index; from contrastlab.search.querying import "
            "search_folder; e = HashEmbedder(dim=8); build_index(e, corpus=(['a', 'b'], ['red shoe', 'wool hat']), "
            "backend='milvus', uri=sys.argv[1] + '/m.db').save(sys.argv[1] + '/idx'); "
            "print(search_folder(sys.argv[1] + '/idx', 'wool hat', k=1, embedder=e)[0][1])")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(REPO)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "b"
