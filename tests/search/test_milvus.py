"""MilvusVectors on milvus-lite: the same top-10 as the FAISS folder and a float64 brute force, filtering, reopening,
measured recall of HNSW / IVF_FLAT, and a clear error for every bad input. One milvus-lite database per module; its
embedded server is shut down at the end (checked: the data folder can be opened again)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from contrastlab.search import milvus as milvus_module                  # noqa: E402
from contrastlab.search import milvus_store                             # noqa: E402
from contrastlab.search.index import VectorIndex                        # noqa: E402
from contrastlab.search.milvus import MilvusCollectionError, MilvusVectors   # noqa: E402

from .helpers import assert_same_ranking, clustered, reference_top_k    # noqa: E402

N, D = 2000, 32
IDS = [f"doc{i}" for i in range(N)]
TEXTS = [f"text of document {i}" for i in range(N)]


@pytest.fixture(scope="module")
def corpus():
    return clustered(N, D, clusters=25, seed=3)                         # (N, D) float64, continuous: no ties


@pytest.fixture(scope="module")
def queries(corpus):
    rng = np.random.default_rng(4)
    return corpus[rng.choice(N, 40, replace=False)] + 0.05 * rng.standard_normal((40, D))   # (Q, D)


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    return str(tmp_path_factory.mktemp("milvus") / "milvus.db")


@pytest.fixture(scope="module")
def exact(corpus, uri):
    """The exact collection, open for the whole module; closing it shuts milvus-lite's server down."""
    v = MilvusVectors.build(corpus, IDS, texts=TEXTS, uri=uri, name="docs", embedder="runs/x")
    yield v
    v.close()
    assert milvus_store._LITE_USERS == {}
    from milvus_lite import MilvusLite
    MilvusLite(uri).close()             # raises DataDirLockedError if the embedded server still held the folder


def test_top10_equals_the_faiss_folder_and_float64_brute_force(exact, corpus, queries, tmp_path):
    VectorIndex.build(corpus, IDS, texts=TEXTS, kind="exact").save(tmp_path / "idx")
    folder = VectorIndex.load(tmp_path / "idx")
    scores, ids = exact.search(queries, 10)
    f_scores, f_ids = folder.search(queries, 10)
    assert ids == f_ids
    assert scores.shape == (40, 10) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, f_scores, atol=1e-5)
    ref_scores, ref_rows = reference_top_k(corpus, queries, 10)
    assert ids == [[IDS[j] for j in row] for row in ref_rows]
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    assert exact.kind == "exact" and exact.meta["index_type"] == "FLAT"


def test_allowed_ids_search_exactly_over_the_subset(exact, corpus, queries):
    rng = np.random.default_rng(6)
    rows = np.sort(rng.choice(N, 300, replace=False))
    scores, ids = exact.search(queries, 10, allowed_ids=[IDS[j] for j in rows])
    ref_scores, ref_rows = reference_top_k(corpus[rows], queries, 10)
    assert_same_ranking(scores, ids, ref_scores, ref_rows, [IDS[j] for j in rows])
    scores, ids = exact.search(queries[:2], 10, allowed_ids=("doc5", "doc7", "doc5"))   # k > candidates
    assert [sorted(r) for r in ids] == [["doc5", "doc7"]] * 2 and scores.shape == (2, 2)


def test_k_larger_than_the_collection_returns_everything(exact, queries):
    scores, ids = exact.search(queries[:1], N + 50)
    assert scores.shape == (1, N) and sorted(ids[0]) == sorted(IDS)
    assert np.all(np.diff(scores[0]) <= 1e-6)                           # best first


def test_open_reads_back_ids_texts_meta_vectors_and_results(exact, corpus, queries, uri):
    with MilvusVectors.open(uri, "docs") as again:
        assert again.ids == IDS and again.texts == TEXTS and len(again) == N and again.dim == D
        assert again.meta == exact.meta
        assert again.meta["backend"] == "milvus" and again.meta["collection"] == "docs" and again.meta["uri"] == uri
        assert again.meta["recall"] is None and again.meta["recall_queries"] == 0 and again.meta["count"] == N
        assert again.meta["embedder"] == "runs/x" and again.text_of(3) == TEXTS[3]
        assert again.unknown_ids(["doc1", "nope"]) == ["nope"]
        unit = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
        np.testing.assert_allclose(again.vectors_at(np.array([7, 2, 7])), unit[[7, 2, 7]], atol=1e-6)
        np.testing.assert_allclose(again.vectors_at(None), unit, atol=1e-6)
        assert again.search(queries, 10)[1] == exact.search(queries, 10)[1]


def test_collection_without_texts_and_with_extra_meta(corpus, uri, exact):
    lines = []
    with MilvusVectors.build(corpus[:50], IDS[:50], uri=uri, name="plain", extra_meta={"labels": ["a", "b"]},
                             batch_bytes=2000, log=lines.append) as v:
        assert v.texts is None and v.text_of(0) is None
    assert [line for line in lines if line.startswith("inserted")][-1] == "inserted 50/50 rows" and len(lines) > 4
    with MilvusVectors.open(uri, "plain", dim=D) as v:
        assert v.texts is None and v.ids == IDS[:50] and v.meta["labels"] == ["a", "b"]
    with pytest.raises(ValueError, match=r"collection 'plain' was closed; open it again with `MilvusVectors.open`"):
        v.search(corpus[:1], 3)
    v.close()                                                           # closing twice is harmless


@pytest.mark.parametrize("kind, index_type", [("hnsw", "HNSW"), ("ivf", "IVF_FLAT")])
def test_approximate_index_measures_its_recall(corpus, uri, exact, kind, index_type):
    with MilvusVectors.build(corpus, IDS, uri=uri, name=f"approx_{kind}", kind=kind) as v:
        meta = v.meta
        assert (v.kind, meta["index_type"], meta["recall_k"], meta["recall_queries"]) == (kind, index_type, 10, 1000)
        assert meta["recall"] >= 0.95 and set(meta["recall_by_queries"]) == {"corpus", "mixed"}
        # an independent measurement on other queries against the float64 reference
        rng = np.random.default_rng(5)
        q = corpus[rng.choice(N, 200, replace=False)] + 0.05 * rng.standard_normal((200, D))
        _, ids = v.search(q, 10)
        _, truth = reference_top_k(corpus, q, 10)
        assert np.mean([len(set(f) & {IDS[j] for j in t}) / 10 for f, t in zip(ids, truth)]) >= 0.9
    with MilvusVectors.open(uri, f"approx_{kind}") as again:
        assert again.meta["params"] == meta["params"] and again.meta["recall"] == meta["recall"]


def test_auto_falls_back_to_flat_when_hnsw_misses_the_target(corpus, queries, uri, exact):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((600, D))                                   # no structure: HNSW with ef 16 misses
    with MilvusVectors.build(x, IDS[:600], uri=uri, name="fallback", exact_max=100, hnsw_m=4, ef_search=16,
                             target_recall=1.0) as v:
        assert v.kind == "exact" and v.meta["index_type"] == "FLAT" and v.meta["recall"] is None
        assert v.meta["note"].startswith("HNSW (M=4, ef_construction=80, ef_search=16) reached recall@10")
        _, ids = v.search(queries, 10)
        assert ids == [[IDS[j] for j in row] for row in reference_top_k(x, queries, 10)[1]]


def test_rebuilding_replaces_a_contrastlab_collection(corpus, uri, exact):
    MilvusVectors.build(corpus[:10], IDS[:10], uri=uri, name="again").close()
    with MilvusVectors.build(corpus[10:30], IDS[10:30], uri=uri, name="again") as v:
        assert v.count == 20
        assert "again__building" not in v.client.list_collections()
    with MilvusVectors.open(uri, "again") as v:
        assert v.ids == IDS[10:30]


@pytest.fixture(scope="module")
def foreign(uri, exact):
    """A collection that contrastlab did not write, in the same database."""
    from pymilvus import MilvusClient
    client = MilvusClient(uri)
    client.create_collection("foreign", dimension=D)
    client.create_collection("other__building", dimension=D)
    yield "foreign"
    client.close()


def test_search_errors(exact):
    q = np.ones((1, D))
    with pytest.raises(ValueError, match=r"`allowed_ids` holds 1 ids not in the index, e.g. \['nope'\]"):
        exact.search(q, 3, allowed_ids=["doc1", "nope"])
    with pytest.raises(ValueError, match=r"`queries` must be a 2-D array of shape \(N, 32\), got shape \(1, 5\)"):
        exact.search(np.ones((1, 5)), 3)
    for k in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match=r"`k` must be a positive int, got"):
            exact.search(q, k)
    with pytest.raises(ValueError, match=r"`allowed_ids` must be a list of ids, got str"):
        exact.search(q, 3, allowed_ids="doc1")
    with pytest.raises(ValueError, match=r"`allowed_ids` must hold at least one id, got an empty list"):
        exact.search(q, 3, allowed_ids=[])
    with pytest.raises(ValueError, match=r"`queries` row 0 is all zeros"):
        exact.search(np.zeros((1, D)), 3)
    with pytest.raises(ValueError, match=r"`tune` is for approximate indexes; this one is exact"):
        exact.tune()


def test_k_past_milvus_topk_limit(exact, monkeypatch):
    monkeypatch.setattr(milvus_module, "MAX_TOPK", 5)
    with pytest.raises(ValueError, match=r"`k` must be at most 5 with the Milvus backend .*got 6"):
        exact.search(np.ones((1, D)), 6)


def test_open_errors(uri, exact, foreign, tmp_path):
    with pytest.raises(MilvusCollectionError, match=r"there is no collection 'missing' at .*collections there: .*docs"):
        MilvusVectors.open(uri, "missing")
    with pytest.raises(MilvusCollectionError, match=r"collection 'foreign' was not written by contrastlab"):
        MilvusVectors.open(uri, "foreign")
    with pytest.raises(MilvusCollectionError, match=r"'docs' holds 32-dimensional vectors, expected `dim` 16"):
        MilvusVectors.open(uri, "docs", dim=16)
    with pytest.raises(MilvusCollectionError, match=r"there is no milvus-lite database at .*nowhere.db"):
        MilvusVectors.open(str(tmp_path / "nowhere.db"), "docs")
    with pytest.raises(ValueError, match=r"`dim` must be a positive int, got 0"):
        MilvusVectors.open(uri, "docs", dim=0)
    assert milvus_store._LITE_USERS == {milvus_store.check_uri(uri)[1]: 1}    # failed opens let go


def test_an_unreachable_server_is_a_clear_error():
    with pytest.raises(MilvusCollectionError, match=r"cannot connect to Milvus at http://127.0.0.1:1: "):
        MilvusVectors.open("http://127.0.0.1:1", "docs")


def test_open_refuses_an_unfinished_or_inconsistent_collection(corpus, uri, exact):
    MilvusVectors.build(corpus[:20], IDS[:20], uri=uri, name="broken").close()
    client = exact.client
    meta = json.loads(client.describe_collection("broken")["properties"]["contrastlab.meta"])
    client.alter_collection_properties("broken", properties={"contrastlab.meta": json.dumps({**meta, "dim": 16})})
    with pytest.raises(MilvusCollectionError, match=r"'broken': its vector field has dimension 32 but its contrastlab "
                                                    r"meta says 16"):
        MilvusVectors.open(uri, "broken")
    client.alter_collection_properties("broken", properties={"contrastlab.meta": json.dumps({**meta, "count": 25})})
    with pytest.raises(MilvusCollectionError, match=r"'broken' holds 20 rows but its contrastlab meta says 25"):
        MilvusVectors.open(uri, "broken")
    client.alter_collection_properties("broken", properties={"contrastlab.state": "building"})
    with pytest.raises(MilvusCollectionError, match=r"collection 'broken' at .* was not finished writing"):
        MilvusVectors.open(uri, "broken")


def test_build_errors(corpus, uri, exact, foreign):
    x = corpus[:3]
    with pytest.raises(MilvusCollectionError, match=r"collection 'foreign' was not written by contrastlab.*refusing "
                                                    r"to replace"):
        MilvusVectors.build(x, IDS[:3], uri=uri, name="foreign")
    assert exact.client.has_collection("foreign") and "foreign__building" not in exact.client.list_collections()
    with pytest.raises(MilvusCollectionError, match=r"collection 'other__building' was not written by contrastlab"):
        MilvusVectors.build(x, IDS[:3], uri=uri, name="other")          # its temporary name is taken
    assert exact.client.has_collection("other__building") and not exact.client.has_collection("other")
    cases = [
        (dict(uri="milvus.sqlite"), r"`uri` must be a milvus-lite path ending in .db or an http\(s\):// Milvus "
                                    r"server URI, got 'milvus.sqlite'"),
        (dict(name="bad-name"), r"`name` must be a Milvus collection name .* got 'bad-name'"),
        (dict(name="x__building"), r"`name` must be .*not ending in __building\), got 'x__building'"),
        (dict(ids=["a", "b", "a"]), r"`ids` must be unique, got 'a' more than once"),
        (dict(ids=["a", "", "c"]), r"`ids\[1\]` must be a non-empty string, got ''"),
        (dict(ids=["a", "b"]), r"`ids` must be a list with one entry per vector \(3\), got 2"),
        (dict(texts=["a", None, "c"]), r"`texts\[1\]` must be a string, got None"),
        (dict(texts=["a", "é" * 40000, "c"]), r"`texts\[1\]` is 80000 bytes in UTF-8; a Milvus VARCHAR field holds "
                                               r"at most 65535"),
        (dict(kind="annoy"), r"`kind` must be one of auto, exact, hnsw, ivf, got 'annoy'"),
        (dict(hnsw_m=0), r"`hnsw_m` must be a positive int, got 0"),
        (dict(target_recall=1.5), r"`target_recall` must be in \(0, 1\], got 1.5"),
        (dict(vectors=np.ones((3, 0))), r"`vectors` must be a 2-D array of shape \(N, D\) with D >= 1"),
        (dict(extra_meta={"labels": {1, 2}}), r"`extra_meta` must hold JSON values, got Object of type set"),
        (dict(extra_meta={"kind": "x", "count": 1}), r"`extra_meta` must not set the keys build sets itself, got "
                                                     r"\['count', 'kind'\]"),
    ]
    for change, message in cases:
        args = {"vectors": x, "ids": IDS[:3], "uri": uri, "name": "never", **change}
        with pytest.raises(ValueError, match=message):
            MilvusVectors.build(args.pop("vectors"), args.pop("ids"), **args)
    assert not exact.client.has_collection("never")
