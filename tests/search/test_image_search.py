"""Search over an image run (issue #14 item 3): `index RUN --images SPEC`, `search IDX --image FILE
[--exclude-self]`, `POST /search {"image": base64}`, checked against exact cosine search in float64 numpy, and a
4xx / CLI error with its message for every malformed query."""
from __future__ import annotations

import argparse
import base64
import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from contrastlab.cli.search import add_search_commands
from contrastlab.search import IndexFolderError, VectorIndex, create_search_app
from contrastlab.search.store import open_index

from .helpers import assert_same_ranking


def parse(argv):
    parser = argparse.ArgumentParser(prog="contrastlab")
    add_search_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def png(pixels: np.ndarray, mode: str) -> bytes:
    """(H, W) or (H, W, 3) uint8 -> PNG bytes, written with Pillow directly (not with the code under test)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels), mode).save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A SimCLR run over digits (a few steps), its index of all 1,797 digits built by the CLI, the images in
    index order (train then test), their labels and the run's embedder."""
    from contrastlab.data import load_images
    from contrastlab.search import load_embedder
    from contrastlab.train import TrainConfig, Trainer
    root = tmp_path_factory.mktemp("image-search")
    cfg = TrainConfig(method="simclr", data="digits", steps=20, batch_size=64, final_eval=False, probe_size=50,
                      hyperparameters={"proj_hidden_dim": 32, "proj_dim": 16})
    Trainer.from_config(cfg, root / "run", show_progress=False).fit()
    args = parse(["index", str(root / "run"), "--images", "digits", "--out", str(root / "idx"), "--quiet"])
    assert args.handler(args) == 0
    data = load_images("digits")
    x = np.concatenate([data.x.numpy(), data.x_test.numpy()])                    # (N, 1, 8, 8)
    y = np.concatenate([data.y.numpy(), data.y_test.numpy()])                    # (N,)
    return root, x, y, load_embedder(str(root / "run"))


def reference_excluding_self(z: np.ndarray, q: np.ndarray, k: int):
    """float64 exact cosine top-k of queries `q` over `z`, leaving out rows at cosine >= 0.9999 (the query
    itself and exact duplicates of it). Shape: -> (Q, k) scores and rows."""
    s = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (z / np.linalg.norm(z, axis=1, keepdims=True)).T
    s = np.where(s >= 0.9999, -np.inf, s)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, order, 1), order


def test_image_to_image_search_finds_the_same_digit_and_equals_exact_numpy_search(digits_run):
    from contrastlab.search.neighbours import search_excluding_self
    root, x, y, embedder = digits_run
    index = open_index(root / "idx")
    assert index.names == ("images",) and index.modalities == ("image",) and index.count == len(x) == 1797
    assert index.collection("images").ids == [str(i) for i in range(len(x))]
    assert index.collection("images").texts == [str(v) for v in y]                             # class names: "0".."9"
    z = embedder.encode_images(x).astype(np.float64)                             # (N, D): the eval feature
    np.testing.assert_allclose(index.collection("images").vectors_at(None), z / np.linalg.norm(z, axis=1, keepdims=True),
                               atol=1e-5)
    queries = np.arange(0, len(x), 7)                                            # (Q,)
    scores, ids = search_excluding_self(index.collection("images"), z[queries], 10)
    ref_scores, ref_rows = reference_excluding_self(z, z[queries], 10)
    assert_same_ranking(np.stack(scores), ids, ref_scores, ref_rows, index.collection("images").ids)
    same = np.mean([[y[int(d)] == y[q] for d in row] for q, row in zip(queries, ids)])
    assert same > 0.6, same                                                      # chance: about 0.1
    assert all(str(q) not in row for q, row in zip(queries, ids))


def test_search_command_answers_an_image_file_with_labelled_neighbours(digits_run, tmp_path, capsys):
    root, x, y, embedder = digits_run
    row = 123
    (tmp_path / "q.png").write_bytes(png(x[row, 0], "L"))
    args = parse(["search", str(root / "idx"), "--image", str(tmp_path / "q.png"), "-k", "10", "--exclude-self"])
    assert args.handler(args) == 0
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    z = embedder.encode_images(x).astype(np.float64)
    ref_scores, ref_rows = reference_excluding_self(z, z[row:row + 1], 10)
    got = [line.split() for line in lines]                                      # rank, score, id, label
    assert [g[2] for g in got] == [str(r) for r in ref_rows[0]] and str(row) not in [g[2] for g in got]
    assert [g[3] for g in got] == [str(y[r]) for r in ref_rows[0]]
    np.testing.assert_allclose([float(g[1]) for g in got], ref_scores[0], atol=1e-4)
    assert out.err == ""                                                         # 8x8 gray: nothing resized
    args = parse(["search", str(root / "idx"), "--image", str(tmp_path / "q.png"), "-k", "1"])
    assert args.handler(args) == 0
    assert capsys.readouterr().out.split()[2] == str(row)                        # without it: itself first


def test_a_query_of_another_size_is_resized_and_says_so(digits_run, tmp_path, capsys):
    root, x, _, _ = digits_run
    big = np.kron(x[5, 0], np.ones((4, 4), np.uint8))                            # (32, 32): each pixel 4x4
    (tmp_path / "big.png").write_bytes(png(big, "L"))
    args = parse(["search", str(root / "idx"), "--image", str(tmp_path / "big.png"), "-k", "3"])
    assert args.handler(args) == 0
    assert "note: the image was resized from 32x32 to 8x8 pixels" in capsys.readouterr().err


@pytest.fixture()
def client(digits_run):
    root, _, _, embedder = digits_run
    with TestClient(create_search_app(open_index(root / "idx"), embedder, max_image_bytes=64 * 1024),
                    base_url="http://127.0.0.1") as c:
        yield c


def test_the_api_answers_image_queries_with_ids_scores_labels_and_thumbnails(digits_run, client):
    root, x, y, embedder = digits_run
    row = 40
    reply = client.post("/search", json={"image": b64(png(x[row, 0], "L")), "k": 5, "exclude_self": True})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["collection"] == "images" and "notes" not in body
    z = embedder.encode_images(x).astype(np.float64)
    ref_scores, ref_rows = reference_excluding_self(z, z[row:row + 1], 5)
    assert [r["id"] for r in body["results"]] == [str(r) for r in ref_rows[0]]
    assert [r["label"] for r in body["results"]] == [str(y[r]) for r in ref_rows[0]]
    np.testing.assert_allclose([r["score"] for r in body["results"]], ref_scores[0], atol=1e-4)
    first = body["results"][0]
    assert first["thumbnail"] == f"/thumbnails/images/{first['id']}.png"
    thumb = client.get(first["thumbnail"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    pixels = np.asarray(Image.open(io.BytesIO(thumb.content)).convert("L"))
    np.testing.assert_array_equal(pixels, x[int(first["id"]), 0])               # the digit itself, 8x8
    alone = client.post("/search", json={"image": b64(png(x[row, 0], "L")), "k": 1}).json()
    assert alone["results"][0]["id"] == str(row)
    resized = client.post("/search", json={"image": b64(png(np.kron(x[row, 0], np.ones((2, 2), np.uint8)), "L"))})
    assert resized.status_code == 200 and "resized from 16x16 to 8x8" in resized.json()["notes"][0]
    health = client.get("/health").json()
    assert health["modalities"] == ["image"] and list(health["collections"]) == ["images"]


def test_every_malformed_image_query_gets_its_4xx(digits_run, client):
    root, x, _, _ = digits_run
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 255                                                         # pure red
    huge = png(np.zeros((2100, 2100), np.uint8), "L")                            # 4.4 Mpixels, a few KiB
    cases = [
        ({"image": b64(b"not an image at all")}, 422, "'image' is not a PNG or JPEG image"),
        ({"image": b64(b"GIF89a" + bytes(20))}, 422, "'image' must be a PNG or JPEG image, got GIF"),
        ({"image": "@@@"}, 422, "'image' is not valid base64"),
        ({"image": b64(bytes(70 * 1024))}, 413, "'image' must be at most 65536 bytes"),
        ({"image": b64(huge)}, 413, "'image' is too large: 2100x2100 = 4410000 pixels"),
        ({"image": b64(png(colour, "RGB"))}, 422, "'image' is a colour image (3 channels, differing by up to 255 "
                                                  "levels) but the run takes 1-channel (grayscale) images"),
        ({"query": "a seven"}, 422, "this index holds image embeddings only (modalities: image): 'query' (a text "
                                    "query) cannot be answered; send 'image' or 'vector'"),
        ({"image": b64(png(x[0, 0], "L")), "collection": "names"}, 422,
         "'collection' must be one of 'images' (this index holds only images), got string 'names'"),
        ({"image": b64(png(x[0, 0], "L")), "exclude_self": "yes"}, 422,
         "'exclude_self' must be true or false, got string 'yes'"),
    ]
    for body, status, message in cases:
        reply = client.post("/search", json=body)
        assert reply.status_code == status and message in reply.json()["detail"], (body.keys(), reply.text)
    gray_as_rgb = np.repeat(x[3, 0][..., None], 3, axis=2)                       # a gray picture saved as RGB
    assert client.post("/search", json={"image": b64(png(gray_as_rgb, "RGB"))}).status_code == 200


def test_a_text_index_names_its_modality_to_an_image_query():
    index = VectorIndex.build(np.eye(3), ["a", "b", "c"], texts=["x", "y", "z"])
    with TestClient(create_search_app(index, None), base_url="http://127.0.0.1") as client:
        reply = client.post("/search", json={"image": "AAAA"})
    assert reply.status_code == 422
    assert reply.json()["detail"] == ("this index holds text embeddings only (modalities: text): 'image' (an image "
                                      "query) cannot be answered; send 'query' or 'vector'")


def test_command_errors_name_the_rule(digits_run, tmp_path, capsys):
    root, x, _, _ = digits_run
    (tmp_path / "q.png").write_bytes(png(x[0, 0], "L"))
    np.savez(tmp_path / "rgb.npz", x=np.zeros((12, 8, 8, 3), np.uint8))               # (N, H, W, C): colour
    text_idx = tmp_path / "text-idx"
    VectorIndex.build(np.eye(640)[:3], ["a", "b", "c"], texts=["x", "y", "z"]).save(text_idx)
    cases = [
        (["search", str(root / "idx"), "a seven"],
         "{idx}: this index holds image embeddings only (queries: image): a text query cannot be answered; give "
         "--image FILE"),
        (["search", str(text_idx), "--image", str(tmp_path / "q.png")],
         "this index holds text embeddings only (queries: text): an image query cannot be answered; give a text "
         "query"),
        (["search", str(root / "idx"), "--image", str(tmp_path / "q.png"), "--collection", "names"],
         "--collection names: {idx} has the collections images (queries: image; collections: images)"),
        (["index", str(root / "run"), "--images", "digits", "--corpus", str(tmp_path / "c.jsonl"), "--out",
          str(tmp_path / "i")], "--corpus needs a run that embeds texts; " + str(root / "run") + " is an image "
                                "run: give --images SPEC"),
        (["index", str(tmp_path), "--images", "digits", "--out", str(tmp_path / "i")],
         "--images needs a run with an image encoder; " + str(tmp_path) + " is a text run (or model): give "
         "--corpus FILE"),
        (["index", str(root / "run"), "--images", str(tmp_path / "rgb.npz"), "--out", str(tmp_path / "i")],
         f"--images {tmp_path / 'rgb.npz'}: its images have 3 channel(s) but the run takes 1 (grayscale)"),
        (["index", str(root / "run"), "--out", str(tmp_path / "i")],
         "--images SPEC is required: " + str(root / "run") + " is an image run; give the images to index"),
    ]
    for argv, message in cases:
        args = parse(argv)
        embedder = digits_run[3] if argv[1] == str(text_idx) else None
        assert args.handler(args, embedder=embedder) == 2, argv
        assert message.format(idx=root / "idx") in capsys.readouterr().err, argv


def test_an_index_of_another_checkpoint_of_its_run_is_refused(digits_run, tmp_path, capsys):
    import shutil
    root, x, _, _ = digits_run
    stale = tmp_path / "stale"
    shutil.copytree(root / "idx", stale)
    meta = json.loads((stale / "meta.json").read_text())
    assert meta["run_step"] == 20
    meta["run_step"] = 7
    (stale / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "q.png").write_bytes(png(x[0, 0], "L"))
    args = parse(["search", str(stale), "--image", str(tmp_path / "q.png")])
    assert args.handler(args) == 2
    assert (f"was built from {root / 'run'} at step 7, but that run's checkpoint is now at step 20: rebuild the "
            f"index with `contrastlab index {root / 'run'} --images digits --out {stale}`") in capsys.readouterr().err


def test_an_image_only_index_round_trips_and_a_bad_collection_list_is_refused(digits_run, tmp_path):
    root, _, _, _ = digits_run
    index = open_index(root / "idx")
    copy = tmp_path / "copy"
    index.save(copy)
    back = open_index(copy)
    images = back.collection("images")
    assert back.names == ("images",) and images.ids == index.collection("images").ids
    assert images.thumbnails.data == index.collection("images").thumbnails.data and images.text_field == "label"
    assert sorted(p.name for p in copy.iterdir()) == ["images", "meta.json"]
    meta = json.loads((copy / "meta.json").read_text())
    assert meta["format"] == "contrastlab-search-index" and meta["queries"] == ["image"]
    assert meta["collections"] == {"images": {"modality": "image", "count": 1797, "text_field": "label",
                                              "thumbnails": True, "backend": "faiss"}}
    meta["collections"] = {"images": {"modality": "sound", "text_field": "label"}}
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(IndexFolderError, match="collection 'images' is not described by a modality"):
        open_index(copy)
    meta["format_version"] = 3
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(IndexFolderError, match="has search-index format version 3; this contrastlab reads version "
                                               "2: rebuild it with `contrastlab index`"):
        open_index(copy)
