"""Search across modalities with a short CLIP run on emoji: `contrastlab index RUN --out INDEX` without a corpus,
`contrastlab search` / `serve`. Rankings are checked against a float64 brute force over embeddings computed
directly from the trained method (not from the index or the loaded embedder)."""
from __future__ import annotations

import argparse
import base64
import io
import json
import signal
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from PIL import Image

from contrastlab.cli.search import add_search_commands
from contrastlab.search import IndexFolderError, create_search_app, load_index
from contrastlab.search.multimodal import ImageTextEmbedder, decode_image, load_image_text_embedder
from contrastlab.search.store import open_index

from .helpers import assert_same_ranking, live_search_server, reference_top_k

REPO = Path(__file__).resolve().parents[2]
QUERIES = ["red heart", "smiling face", "a green tree", "flag", "cat"]


def parse(argv):
    parser = argparse.ArgumentParser(prog="contrastlab")
    add_search_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def png_bytes(pixels, mode="RGB") -> bytes:
    """(3, H, W) uint8 -> PNG, written with Pillow directly (not with the code under test)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.asarray(pixels).transpose(1, 2, 0)), mode).save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 15-step CLIP run on 16-pixel emoji (one thread), indexed with `contrastlab index RUN --out INDEX`."""
    from contrastlab.train.config import TrainConfig
    from contrastlab.train.trainer import Trainer
    threads = torch.get_num_threads()
    root = tmp_path_factory.mktemp("clip-search")
    cfg = TrainConfig(method="clip", data="emoji", image_size=16, steps=15, batch_size=128, threads=1, seed=0,
                      final_eval=False, monitor_every=15, hyperparameters={"languages": "en", "embed_dim": 32})
    trainer = Trainer.from_config(cfg, root / "run", show_progress=False)
    trainer.fit()
    args = parse(["index", str(root / "run"), "--out", str(root / "idx"), "--quiet"])
    assert args.handler(args) == 0
    yield trainer, root
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(run):
    """Unit float64 embeddings straight from the trained method: every image (N, E) and every English name (N, E)."""
    trainer, _ = run
    method, data = trainer.method, trainer.data
    method.eval()
    with torch.no_grad():
        images = F.normalize(method.embed(data.images.float() / 255).double(), dim=1).numpy()     # (N, E)
    names = method.embed_texts(list(data.texts["en"])).double().numpy()                          # (N, E)
    return images, names


@pytest.fixture(scope="module")
def served(run):
    _, root = run
    index = open_index(root / "idx")
    embedder = load_image_text_embedder(root / "run")
    with TestClient(create_search_app(index, embedder, max_k=100), base_url="http://127.0.0.1") as client:
        yield index, embedder, client


def test_the_index_holds_every_image_with_its_name_and_the_names(run, served):
    trainer, root = run
    data = trainer.data
    index, _, client = served
    assert index.collection("images").ids == list(data.ids) and index.collection("images").texts == list(data.texts["en"])
    assert index.collection("names").texts == list(data.texts["en"]) and index.collection("names").ids == list(data.ids)   # names are distinct
    assert index.meta["embedder"] == str((root / "run").resolve()) and index.meta["split"] == "all"
    assert index.meta["query_image"] == {"fit": "pad", "resample": "lanczos"}
    health = client.get("/health").json()
    assert health["modalities"] == ["text", "image"] and health["count"] == 2 * len(data.ids) == 3740
    assert health["dim"] == 32 and health["collections"]["names"] == {"modality": "text", "count": 1870,
                                                                      "kind": "exact", "recall": None,
                                                                      "thumbnails": False}


def test_a_text_query_returns_images_ranked_as_brute_force(run, served, reference):
    trainer, _ = run
    data = trainer.data
    _, _, client = served
    images, _ = reference
    query = trainer.method.embed_texts(QUERIES).double().numpy()                                 # (Q, E)
    ref_scores, ref_rows = reference_top_k(images, query, 10)
    for q, text in enumerate(QUERIES):
        reply = client.post("/search", json={"query": text, "k": 10})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["collection"] == "images" and len(body["results"]) == 10
        results = body["results"]
        assert_same_ranking(np.array([[r["score"] for r in results]]), [[r["id"] for r in results]],
                            ref_scores[q:q + 1], ref_rows[q:q + 1], list(data.ids))
        for r in results:
            row = data.ids.index(r["id"])
            assert r["text"] == data.texts["en"][row] and r["thumbnail"] == f"/thumbnails/images/{row}.png"


def test_an_image_query_with_a_held_out_emoji_png_returns_names_ranked_as_brute_force(run, served, reference):
    trainer, _ = run
    data = trainer.data
    _, _, client = served
    images, names = reference
    held_out = data.test_indices()[:5].tolist()
    ref_scores, ref_rows = reference_top_k(names, images[held_out], 10)
    for q, row in enumerate(held_out):
        body = client.post("/search", json={"image": b64(png_bytes(data.images[row].numpy())), "k": 10}).json()
        assert body["collection"] == "names"
        results = body["results"]
        assert "thumbnail" not in results[0]
        assert_same_ranking(np.array([[r["score"] for r in results]]), [[r["id"] for r in results]],
                            ref_scores[q:q + 1], ref_rows[q:q + 1], list(data.ids))
        assert [r["text"] for r in results] == [data.texts["en"][data.ids.index(r["id"])] for r in results]
    # explicit targets: an image against the images finds itself first; a text against the names
    row = held_out[0]
    body = client.post("/search", json={"image": b64(png_bytes(data.images[row].numpy())), "collection": "images",
                                        "k": 1}).json()
    assert body["collection"] == "images" and body["results"][0]["id"] == data.ids[row]
    assert abs(body["results"][0]["score"] - 1.0) < 1e-4
    text = data.texts["en"][row]
    body = client.post("/search", json={"query": text, "collection": "names", "k": 1}).json()
    assert body["results"][0]["text"] == text                                    # the name itself, score 1


def test_other_shapes_of_query_image_are_fitted(run, served, reference):
    """An RGBA PNG (transparent background), a larger image and a JPEG all decode, fit and answer."""
    trainer, _ = run
    data = trainer.data
    _, embedder, client = served
    row = data.test_indices()[0].item()
    rgb = data.images[row].numpy()                                                  # (3, 16, 16)
    alpha = np.full((1, 16, 16), 255, np.uint8)
    alpha[:, :2] = 0                                                                # two transparent rows
    rgba = np.concatenate([rgb, alpha])
    got = embedder.prepare_image(png_bytes(rgba, "RGBA"))
    assert (got[:, 2:] == rgb[:, 2:]).all() and (got[:, :2] == 255).all()         # composited on white
    big = Image.fromarray(rgb.transpose(1, 2, 0)).resize((64, 48))
    for fmt in ("PNG", "JPEG"):
        buf = io.BytesIO()
        big.save(buf, format=fmt)
        reply = client.post("/search", json={"image": "data:image/x;base64," + b64(buf.getvalue()), "k": 3})
        assert reply.status_code == 200 and len(reply.json()["results"]) == 3, reply.text
    assert embedder.prepare_image(buf.getvalue()).shape == (3, 16, 16)


def test_thumbnails_round_trip_to_the_stored_pixels(run, served):
    trainer, _ = run
    data = trainer.data
    index, _, client = served
    for position in (0, 1, 917, 1869):
        reply = client.get(f"/thumbnails/{position}.png")
        assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(reply.content)) as im:
            assert im.format == "PNG"
            pixels = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
        np.testing.assert_array_equal(pixels, data.images[position].numpy())
        assert reply.content == index.collection("images").thumbnail(position)


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="GIF")
    return buf.getvalue()


def _noise_png() -> bytes:
    return png_bytes(np.random.default_rng(0).integers(0, 256, (3, 16, 16), dtype=np.uint8))     # ~850 bytes


def _huge_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (2100, 2100), 255).save(buf, format="PNG")                   # ~4.4 M pixels, a few KiB
    return buf.getvalue()


@pytest.mark.parametrize("body, status, message", [
    ({"query": "heart", "image": "AAAA"}, 422, "give exactly one of 'query' (a text), 'image' (a base64 PNG or JPEG "
                                               "file) and 'vector' (a list of numbers), got both 'query' and 'image'"),
    ({"k": 3}, 422, "got none"),
    ({"query": "heart", "image": "AAAA", "vector": [1.0] * 32}, 422, "got 'query' and 'image' and 'vector'"),
    ({"image": 3}, 422, "'image' must be a base64 string of a PNG or JPEG file, got number 3"),
    ({"image": ""}, 422, "'image' must not be empty"),
    ({"image": "not base64!"}, 422, "'image' is not valid base64"),
    ({"image": "data:image/png,abc"}, 422, "'image' is a data URL but not a base64 one"),
    ({"image": b64(b"hello, I am not an image")}, 422, "'image' is not a PNG or JPEG image (Pillow cannot identify "
                                                        "it)"),
    ({"image": b64(_gif())}, 422, "'image' must be a PNG or JPEG image, got GIF"),
    ({"image": b64(_noise_png()[:400])}, 422, "'image' could not be decoded: OSError: image file is truncated"),
    ({"image": b64(_huge_png())}, 413, "'image' is too large: 2100x2100 = 4410000 pixels, at most 4194304"),
    ({"query": "heart", "collection": "pictures"}, 422, "'collection' must be one of 'images', 'names', got string "
                                                        "'pictures'"),
    ({"query": "heart", "collection": None}, 422, "'collection' must be one of 'images', 'names', got null None"),
    ({"query": "heart", "target": "names"}, 422, "unknown field 'target'; the fields are query, image, vector, k, "
                                                 "ids, collection"),
    ({"query": "heart", "k": 0}, 422, "'k' must be a positive int, got 0"),
    ({"query": "heart", "k": 101}, 422, "'k' must be at most 100, got 101"),
    ({"query": " "}, 422, "'query' must not be empty or only whitespace"),
    ({"query": "heart", "ids": ["nope"]}, 422, "'ids' holds 1 unknown document id: 'nope'"),
    ({"vector": [0.0] * 32}, 422, "'vector' must have a direction"),
    ({"query": "heart", "size": 3}, 422, "unknown field 'size'; the fields are query, image, vector, k, ids, collection"),
])
def test_bad_inputs_get_a_4xx_naming_the_field(served, body, status, message):
    _, _, client = served
    reply = client.post("/search", json=body)
    assert reply.status_code == status, reply.text
    assert message in reply.json()["detail"]


def test_image_size_limits_and_bad_thumbnail_paths(run, served):
    trainer, _ = run
    index, embedder, client = served
    png = png_bytes(trainer.data.images[0].numpy())
    with TestClient(create_search_app(index, embedder, max_image_bytes=len(png) - 1),
                    base_url="http://127.0.0.1") as small:
        reply = small.post("/search", json={"image": b64(png)})
        assert reply.status_code == 413 and reply.json()["detail"] == (f"'image' must be at most {len(png) - 1} "
                                                                        f"bytes, got {len(png)}")
    with TestClient(create_search_app(index, None), base_url="http://127.0.0.1") as blind:
        reply = blind.post("/search", json={"image": b64(png)})
        assert reply.status_code == 422 and "no image embedder" in reply.json()["detail"]
    for path, status, message in [("abc.png", 422, "'position' must be a non-negative int"),
                                  ("-1.png", 422, "'position' must be a non-negative int"),
                                  ("01.png", 422, "without leading zeros"), ("3.jpg", 422, "as in /thumbnails/images/0.png"),
                                  ("1870.png", 404, "'position' must be less than 1870 (the number of images), "
                                                    "got 1870"),
                                  ("99999999999999999999.png", 422, "'position'")]:
        reply = client.get(f"/thumbnails/{path}")
        assert reply.status_code == status and message in reply.json()["detail"], (path, reply.text)
    assert client.get("/thumbnails/..%2Fmeta.json").status_code in (404, 422)
    assert client.get("/thumbnails/1.png", headers={"Host": "evil.example"}).status_code == 400


def test_a_text_index_does_not_take_image_fields(served):
    import contrastlab.search as search
    index, embedder, _ = served
    texts_only = search.SearchIndex([index.collection("names")], queries=("text",))
    with TestClient(create_search_app(texts_only, embedder), base_url="http://127.0.0.1") as client:
        reply = client.post("/search", json={"image": "AAAA"})
        assert reply.status_code == 422 and "this index holds text embeddings only (modalities: text)" in \
            reply.json()["detail"]
        assert client.get("/thumbnails/0.png").status_code == 404
        assert client.post("/search", json={"query": "heart"}).json()["collection"] == "names"
    assert search.SearchIndex is type(index)


def test_concurrent_text_and_image_queries_are_batched_on_a_live_server(run, served, reference):
    trainer, _ = run
    data = trainer.data
    index, embedder, _ = served
    images, names = reference
    rows = data.test_indices()[:6].tolist()
    bodies = [{"query": q, "k": 5} for q in QUERIES] + [{"image": b64(png_bytes(data.images[r].numpy())), "k": 5}
                                                        for r in rows]
    with live_search_server(index, embedder, max_wait_ms=100) as (url, _, _):
        def post(body):
            request = urllib.request.Request(url + "/search", data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            return json.loads(urllib.request.urlopen(request, timeout=30).read())
        with ThreadPoolExecutor(len(bodies)) as pool:
            replies = list(pool.map(post, bodies))
        stats = json.loads(urllib.request.urlopen(url + "/stats", timeout=30).read())
    assert stats["items"] == len(bodies) and stats["largest_batch"] > 1 and stats["batches"] < len(bodies)
    text_ref = reference_top_k(images, trainer.method.embed_texts(QUERIES).double().numpy(), 5)
    image_ref = reference_top_k(names, images[rows], 5)
    for i, reply in enumerate(replies):
        ref_scores, ref_rows = text_ref if i < len(QUERIES) else image_ref
        j = i if i < len(QUERIES) else i - len(QUERIES)
        assert reply["collection"] == ("images" if i < len(QUERIES) else "names")
        assert_same_ranking(np.array([[r["score"] for r in reply["results"]]]),
                            [[r["id"] for r in reply["results"]]], ref_scores[j:j + 1], ref_rows[j:j + 1],
                            list(data.ids))


def test_the_loaded_towers_need_no_training_data(run, reference, monkeypatch):
    import contrastlab.data.image_text as image_text
    from contrastlab.search import load_embedder
    trainer, root = run

    def refuse(*args, **kwargs):
        raise AssertionError("the training data was loaded")
    monkeypatch.setattr(image_text, "load_image_text", refuse)
    embedder = load_embedder(root / "run")                                       # routed to the two towers
    assert isinstance(embedder, ImageTextEmbedder) and embedder.dim == 32 and embedder.image_size == (16, 16)
    images, names = reference
    np.testing.assert_allclose(embedder.encode_images(trainer.data.images[:50].numpy()), images[:50], atol=1e-5)
    np.testing.assert_allclose(embedder.encode(list(trainer.data.texts["en"][:50])), names[:50], atol=1e-5)


def test_search_command_lists_images_for_a_text_and_names_for_an_image(run, reference, capsys, tmp_path):
    trainer, root = run
    data = trainer.data
    images, names = reference
    args = parse(["search", str(root / "idx"), "red heart", "-k", "4"])
    assert args.handler(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    ref_scores, ref_rows = reference_top_k(images, trainer.method.embed_texts(["red heart"]).double().numpy(), 4)
    for line, s, r in zip(lines, ref_scores[0], ref_rows[0]):
        rank, score, ident, name = line.split(None, 3)
        assert abs(float(score) - s) < 1e-3 and ident == data.ids[r] and name == data.texts["en"][r]
    row = data.test_indices()[3].item()
    (tmp_path / "q.png").write_bytes(png_bytes(data.images[row].numpy()))
    args = parse(["search", str(root / "idx"), "--image", str(tmp_path / "q.png"), "-k", "4"])
    assert args.handler(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    ref_scores, ref_rows = reference_top_k(names, images[row:row + 1], 4)
    assert [line.split(None, 3)[3] for line in lines] == [data.texts["en"][r] for r in ref_rows[0]]


@pytest.mark.parametrize("argv, message", [
    (["search", "{idx}"], "give a query text or --image FILE"),
    (["search", "{idx}", "heart", "--image", "{tmp}/q.png"], "give a query text or --image FILE, not both"),
    (["search", "{idx}", "--image", "{tmp}/missing.png"], "--image {tmp}/missing.png does not exist"),
    (["search", "{idx}", "--image", "{tmp}/not.png"], "--image {tmp}/not.png is not a PNG or JPEG image"),
    (["search", "{tmp}/text-idx", "heart", "--collection", "names"], "--collection names: {tmp}/text-idx has the "
                                                                      "collections texts (queries: text; "
                                                                      "collections: texts)"),
    (["search", "{tmp}/text-idx", "--image", "{tmp}/q.png"], "{tmp}/text-idx: this index holds text embeddings "
                                                              "only (queries: text): an image query cannot be "
                                                              "answered; give a text query"),
    (["index", "{run}", "--out", "{tmp}/i", "--language", "xx"], "--language must be one of en, es"),
    (["index", "{tmp}", "--out", "{tmp}/i"], "--corpus or --images is required unless RUN is an image-text run directory"),
    (["index", "{run}", "--corpus", "{tmp}/c.jsonl", "--out", "{tmp}/i", "--split", "test"],
     "--split chooses which images are indexed"),
])
def test_command_errors_exit_2_with_a_message(run, served, argv, message, tmp_path, capsys):
    from contrastlab.search import VectorIndex
    _, root = run
    (tmp_path / "not.png").write_bytes(b"plain text")
    (tmp_path / "q.png").write_bytes(b"x")
    (tmp_path / "c.jsonl").write_text('{"id": "a", "text": "heart"}\n')
    VectorIndex.build(np.eye(32)[:2], ["a", "b"], embedder=str(root / "run")).save(tmp_path / "text-idx")
    fill = {"idx": root / "idx", "run": root / "run", "tmp": tmp_path}
    args = parse([a.format(**fill) for a in argv])
    assert args.handler(args, embedder=served[1]) == 2                 # the run's towers, loaded once
    err = capsys.readouterr().err
    assert err.startswith(f"contrastlab {argv[0]}: ") and message.format(**fill) in err, err


def test_a_text_run_is_still_required_to_give_a_corpus(tmp_path, capsys):
    run = tmp_path / "text-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": {"modality": "text"}, "train": {}}))
    args = parse(["index", str(run), "--out", str(tmp_path / "i")])
    assert args.handler(args) == 2
    assert "--corpus is required: " in capsys.readouterr().err


def test_split_and_a_corpus_with_an_image_text_run(run, tmp_path, capsys):
    trainer, root = run
    data = trainer.data
    args = parse(["index", str(root / "run"), "--out", str(tmp_path / "test-idx"), "--split", "test",
                  "--language", "es", "--quiet"])
    assert args.handler(args) == 0
    assert "indexed 274 images and 274 names of emoji (test; names in es)" in capsys.readouterr().out
    index = open_index(tmp_path / "test-idx")
    test = data.test_indices().tolist()
    assert index.collection("images").ids == [data.ids[i] for i in test] and index.collection("names").texts == [data.texts["es"][i] for i in test]
    np.testing.assert_array_equal(Image.open(io.BytesIO(index.collection("images").thumbnail(5))).convert("RGB"),
                                  data.images[test[5]].numpy().transpose(1, 2, 0))
    (tmp_path / "c.jsonl").write_text('{"id": "a", "text": "red heart"}\n{"id": "b", "text": "green tree"}\n')
    args = parse(["index", str(root / "run"), "--corpus", str(tmp_path / "c.jsonl"), "--out", str(tmp_path / "t"),
                  "--quiet"])
    assert args.handler(args) == 0                                      # texts embedded by the text tower
    text_index = open_index(tmp_path / "t")
    assert text_index.dim == 32 and text_index.names == ("texts",)
    assert text_index.collection("texts").ids == ["a", "b"] and text_index.queries == ("text", "image")


def test_the_folder_is_checked_and_a_text_loader_names_the_kind(run, tmp_path):
    import shutil
    _, root = run
    folder = tmp_path / "idx"
    shutil.copytree(root / "idx", folder)
    assert sorted(p.name for p in folder.iterdir()) == ["images", "meta.json", "names"]
    assert sorted(p.name for p in (folder / "images").iterdir()) == ["docs.jsonl", "index.faiss", "meta.json",
                                                                     "thumbnails.bin", "thumbnails.json"]
    with pytest.raises(IndexFolderError, match="is a search index of named collections"):
        load_index(folder)
    data = bytearray((folder / "images" / "thumbnails.bin").read_bytes())
    data[100] ^= 0xFF
    (folder / "images" / "thumbnails.bin").write_bytes(bytes(data))
    with pytest.raises(IndexFolderError, match="thumbnails.bin does not match the SHA-256"):
        open_index(folder)
    shutil.rmtree(folder)
    shutil.copytree(root / "idx", folder)
    shutil.copy(root / "idx" / "images" / "meta.json", folder / "names" / "meta.json")       # a swapped collection
    # caught by its size or, when the sizes happen to agree, by its SHA-256
    with pytest.raises(IndexFolderError, match=r"names/meta.json (does not match the SHA-256|has \d+ bytes but)"):
        open_index(folder)
    (folder / "images" / "thumbnails.json").unlink()
    shutil.copy(root / "idx" / "names" / "meta.json", folder / "names" / "meta.json")
    with pytest.raises(IndexFolderError, match="incomplete: images/thumbnails.json is missing"):
        open_index(folder)


class PixelEmbedder:
    """Mean colour (images) and hashed letters (texts), normalised: a stand-in for the two towers."""

    dim, source = 3, "stand-in"

    def encode_images(self, images, *, batch_size=256):
        z = np.asarray(images, np.float64).mean((2, 3)) + 1.0                  # (N, 3)
        return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)

    def encode(self, texts, *, batch_size=256):
        z = np.array([[1.0 + t.count("r"), 1.0 + t.count("g"), 1.0 + t.count("b")] for t in texts])
        return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)


def test_build_shrinks_large_thumbnails_and_keeps_each_name_once(tmp_path):
    from contrastlab.search.indexing import build_index
    from contrastlab.search.multimodal import MAX_THUMBNAIL_SIZE
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 3, 80, 80), dtype=np.uint8)               # (N, 3, H, W), larger than 64
    index = build_index(PixelEmbedder(), images=images, ids=["a", "b", "c", "d"],
                        texts=["red", None, "red", "green"], names=True)
    assert index.collection("images").texts == ["red", None, "red", "green"]
    assert index.collection("names").ids == ["a", "d"] and index.collection("names").texts == ["red", "green"]
    assert index.meta["thumbnail_size"] == [MAX_THUMBNAIL_SIZE] * 2 and index.meta["embedder"] == "stand-in"
    with Image.open(io.BytesIO(index.collection("images").thumbnail(2))) as im:
        assert im.size == (64, 64)
        expected = Image.fromarray(images[2].transpose(1, 2, 0)).resize((64, 64), Image.Resampling.LANCZOS)
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), np.asarray(expected))
    index.save(tmp_path / "idx")
    back = open_index(tmp_path / "idx")
    assert back.collection("images").thumbnails.data == index.collection("images").thumbnails.data
    assert back.collection("names").texts == ["red", "green"] and back.queries == ("text", "image")
    assert back.meta == index.meta
    with pytest.raises(ValueError, match="the images have no names in this language"):
        build_index(PixelEmbedder(), images=images, ids=["a", "b", "c", "d"], texts=[None, " ", None, None],
                    names=True)
    with pytest.raises(IndexError, match=r"`position` must be an int in \[0, 4\), got 4"):
        index.collection("images").thumbnail(4)


def test_decode_image_refuses_a_bomb_before_decoding_and_reads_gray_and_palette():
    with pytest.raises(ValueError, match="too large: 2100x2100"):
        decode_image(_huge_png())
    gray = io.BytesIO()
    Image.new("L", (3, 2), 7).save(gray, format="PNG")
    assert np.asarray(decode_image(gray.getvalue())).tolist()[0][0] == [7, 7, 7]
    pal = Image.new("P", (2, 2), 0)
    pal.putpalette([10, 20, 30] + [0] * 765)
    pal.info["transparency"] = 1                                       # not the index in use: stays opaque
    buf = io.BytesIO()
    pal.save(buf, format="PNG", transparency=1)
    assert np.asarray(decode_image(buf.getvalue()))[0, 0].tolist() == [10, 20, 30]


SERVE = "import sys; from contrastlab.cli import main; sys.exit(main(['serve', sys.argv[1], '--port', '0']))"


def test_serve_command_answers_a_text_query_with_images_and_their_thumbnails(run):
    _, root = run
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(root / "idx")], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert "1870 images (image, exact), 1870 names (text, exact); dim 32 on http://127.0.0.1:" in first, \
            first + proc.stderr.read()
        url = first.split(" on ")[1].split()[0]
        request = urllib.request.Request(url + "/search", data=json.dumps({"query": "red heart", "k": 3}).encode(),
                                         headers={"Content-Type": "application/json"})
        results = json.loads(urllib.request.urlopen(request, timeout=30).read())["results"]
        thumb = urllib.request.urlopen(url + results[0]["thumbnail"], timeout=30)
        assert thumb.headers["Content-Type"] == "image/png" and thumb.read().startswith(b"\x89PNG")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "contrastlab search: stopped" in out and "Traceback" not in err
