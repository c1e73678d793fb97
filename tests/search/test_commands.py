"""The `index`, `search` and `serve` commands, with an injected embedder and through the lazy
`contrastlab.search.embedders.load_embedder` (a stand-in here, so no model is trained)."""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import types
import urllib.request
from pathlib import Path

import pytest

from contrastlab.cli.search import add_search_commands
from contrastlab.search import open_index

from .helpers import HashEmbedder, reference_top_k

DOCS = {"s1": "red running shoe", "s2": "blue running shoe", "h1": "red wool hat", "g1": "green garden hose",
        "j1": "blue denim jacket", "j2": "wool winter jacket", "g2": "garden shears", "s3": "running shorts"}
REPO = Path(__file__).resolve().parents[2]


def parse(argv):
    parser = argparse.ArgumentParser(prog="contrastlab")
    add_search_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in DOCS.items()))
    return path


@pytest.fixture
def stand_in(monkeypatch):
    """A stand-in `contrastlab.search.embedders.load_embedder` that records the source it was given."""
    from contrastlab.search import embedders
    sources = []

    def load_embedder(path):
        sources.append(path)
        return HashEmbedder(dim=32)

    monkeypatch.setattr(embedders, "load_embedder", load_embedder)
    return sources


def test_index_then_search_through_load_embedder(tmp_path, corpus_file, stand_in, capsys):
    run = tmp_path / "run"
    run.mkdir()
    args = parse(["index", str(run), "--corpus", str(corpus_file), "--out", str(tmp_path / "idx"), "--quiet"])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "indexed 8 texts into" in out and "dim 32, exact" in out
    index = open_index(tmp_path / "idx")
    assert index.meta["embedder"] == str(run.resolve()) and index.collection("texts").texts == list(DOCS.values())
    args = parse(["search", str(tmp_path / "idx"), "red running shoe", "-k", "3"])
    assert args.handler(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert stand_in == [str(run), str(run.resolve())]               # the index remembers the absolute path
    emb = HashEmbedder(dim=32)
    scores, rows = reference_top_k(emb.encode(list(DOCS.values())), emb.encode(["red running shoe"]), 3)
    ids = list(DOCS)
    assert len(lines) == 3
    for rank, (line, s, r) in enumerate(zip(lines, scores[0], rows[0]), 1):
        fields = line.split(None, 3)
        assert fields[0] == str(rank) and abs(float(fields[1]) - s) < 1e-3
        assert fields[2] == ids[r] and fields[3] == DOCS[ids[r]]


def test_index_with_an_injected_embedder_csv_and_hnsw(tmp_path, capsys):
    path = tmp_path / "docs.csv"
    path.write_text("id,text\n" + "".join(f'{i},"doc {i}, words w{i % 7} w{i % 11}"\n' for i in range(300)))
    (tmp_path / "queries.txt").write_text("words w3\n\nw4 w8 doc\nw1\n")
    args = parse(["index", "run", "--corpus", str(path), "--out", str(tmp_path / "idx"), "--kind", "hnsw",
                  "--quiet", "--batch-size", "64", "--queries", str(tmp_path / "queries.txt")])
    embedder = HashEmbedder(dim=32)
    assert args.handler(args, embedder=embedder) == 0
    assert embedder.calls == [64, 64, 64, 64, 44, 3]                 # the corpus, then the 3 sample queries
    out = capsys.readouterr().out
    assert "hnsw" in out and "recall@10" in out and "on given queries, 3 in all" in out
    index = open_index(tmp_path / "idx").collection("texts")
    assert index.kind == "hnsw" and index.texts[5] == "doc 5, words w5 w5" and 0 < index.meta["recall"] <= 1


def test_the_embedders_own_source_is_recorded(tmp_path, corpus_file):
    embedder = HashEmbedder(dim=32)
    embedder.source = "hf:/models/mini"
    args = parse(["index", "hf:/models/mini", "--corpus", str(corpus_file), "--out", str(tmp_path / "i"), "--quiet"])
    assert args.handler(args, embedder=embedder) == 0
    assert open_index(tmp_path / "i").meta["embedder"] == "hf:/models/mini"
    args = parse(["index", "wordllama", "--corpus", str(corpus_file), "--out", str(tmp_path / "j"), "--quiet"])
    assert args.handler(args, embedder=HashEmbedder(dim=32)) == 0
    assert open_index(tmp_path / "j").meta["embedder"] == "wordllama"                  # not a path: kept as given


@pytest.mark.parametrize("argv, message", [
    (["index", "run", "--corpus", "{tmp}/missing.jsonl", "--out", "{tmp}/i"], "missing.jsonl does not exist"),
    (["index", "run", "--corpus", "{tmp}/ok.jsonl", "--out", "{tmp}/i", "--queries", "{tmp}/q.txt"],
     "--queries {tmp}/q.txt does not exist"),
    (["index", "run", "--corpus", "{tmp}/bad.jsonl", "--out", "{tmp}/i"], "bad.jsonl: refused, 2 of 3 lines are "
                                                                           "invalid (more than half)"),
    (["search", "{tmp}/nothing", "red shoe"], "index folder {tmp}/nothing does not exist"),
    (["search", "{tmp}", "  "], "the query must not be empty"),
    (["serve", "{tmp}/nothing"], "index folder {tmp}/nothing does not exist"),
])
def test_errors_exit_2_with_a_message(tmp_path, argv, message, capsys):
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "text": "x"}\n{"id": "b"}\n{"text": "y"}\n')
    (tmp_path / "ok.jsonl").write_text('{"id": "a", "text": "x"}\n')
    args = parse([a.format(tmp=tmp_path) for a in argv])
    assert args.handler(args, embedder=HashEmbedder(dim=32)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"contrastlab {argv[0]}: ") and message.format(tmp=tmp_path) in err


def test_a_malformed_line_is_skipped_with_a_note(tmp_path, corpus_file, capsys):
    corpus_file.write_text(corpus_file.read_text() + '{"id": "x9"}\n')
    args = parse(["index", "run", "--corpus", str(corpus_file), "--out", str(tmp_path / "idx"), "--quiet"])
    with pytest.warns(UserWarning, match="skipped 1 of 9 lines"):
        assert args.handler(args, embedder=HashEmbedder(dim=32)) == 0
    assert "note: docs.jsonl: skipped 1 of 9 malformed lines (line 9: missing field 'text')" in capsys.readouterr().out
    assert open_index(tmp_path / "idx").collection("texts").ids == list(DOCS)


def test_search_refuses_an_embedder_of_another_dimension(tmp_path, corpus_file, capsys):
    args = parse(["index", "run", "--corpus", str(corpus_file), "--out", str(tmp_path / "idx"), "--quiet"])
    assert args.handler(args, embedder=HashEmbedder(dim=32)) == 0
    args = parse(["search", str(tmp_path / "idx"), "red"])
    assert args.handler(args, embedder=HashEmbedder(dim=16)) == 2
    assert "makes 16-dimensional vectors but" in capsys.readouterr().err


SERVE = """
import sys
from tests.search.helpers import HashEmbedder
from contrastlab.search import embedders
embedders.load_embedder = lambda path: HashEmbedder(dim=32)
import argparse
from contrastlab.cli.search import add_search_commands
parser = argparse.ArgumentParser()
add_search_commands(parser.add_subparsers())
args = parser.parse_args(["serve", sys.argv[1], "--port", "0"])
sys.exit(args.handler(args))
"""


def test_serve_prints_its_url_answers_and_stops_cleanly_on_ctrl_c(tmp_path, corpus_file):
    args = parse(["index", "run", "--corpus", str(corpus_file), "--out", str(tmp_path / "idx"), "--quiet"])
    assert args.handler(args, embedder=HashEmbedder(dim=32)) == 0
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(tmp_path / "idx")], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert "on http://127.0.0.1:" in first, first + proc.stderr.read()
        url = first.split(" on ")[1].split()[0]
        health = json.loads(urllib.request.urlopen(url + "/health", timeout=120).read())
        assert health == {"status": "ok", "count": 8, "dim": 32, "kind": "exact", "recall": None,
                          "modalities": ["text"], "collections": {"texts": {
                              "modality": "text", "count": 8, "kind": "exact", "recall": None, "thumbnails": False}}}
        request = urllib.request.Request(url + "/search", data=json.dumps({"query": "wool hat", "k": 1}).encode(),
                                         headers={"Content-Type": "application/json"})
        assert json.loads(urllib.request.urlopen(request, timeout=120).read())["results"][0]["id"] == "h1"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "contrastlab search: stopped" in out and "Traceback" not in err
