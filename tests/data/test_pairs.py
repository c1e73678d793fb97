"""Pair files, click logs and corpus files: formats, malformed lines, the query split."""

import csv
import json
import random

import pytest

from contrastlab.data.pairs import read_clicks, read_corpus, read_pairs, split_queries


def jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def pairs_of(data):
    t = data.train
    return list(zip(t.anchors, t.positives, t.negatives or [None] * len(t), t.positive_ids))


# ---- formats ---------------------------------------------------------------------------------------------

def test_jsonl_fields_aliases_negatives_ids(tmp_path):
    path = jsonl(tmp_path / "p.jsonl", [
        {"query": "a cat", "positive": "un gato", "negatives": ["un perro", "una vaca"], "positive_id": 7},
        {"anchor": "a dog", "document": "un perro"},
        "",                                                        # blank lines are not records
        {"query": "a cow", "positive": "una vaca", "negatives": [], "extra": 1},
    ])
    data = read_pairs(path)
    assert pairs_of(data) == [("a cat", "un gato", ["un perro", "una vaca"], "7"),
                              ("a dog", "un perro", [], "un perro"),
                              ("a cow", "una vaca", [], "una vaca")]
    assert data.train.has_negatives and data.test is None and data.name == "p"


def test_jsonl_without_negatives_has_none(tmp_path):
    data = read_pairs(jsonl(tmp_path / "p.jsonl", [{"query": "q", "positive": "d"}]))
    assert data.train.negatives is None and data.train.positive_ids == ["d"]


def test_csv_header_json_negatives_and_negative_column(tmp_path):
    path = write_csv(tmp_path / "p.csv", ["query", "positive", "negatives", "negative", "positive_id"], [
        ["a cat, small", "un gato", '["un perro", "un pez"]', "", "d1"],
        ["a dog", "un perro", "", "un gato", ""],
        ["", "", "", "", ""],                                      # an empty row is skipped, not an error
        ["a cow", 'una "vaca"\nlechera', "[]", "", ""],
    ])
    assert pairs_of(read_pairs(path)) == [("a cat, small", "un gato", ["un perro", "un pez"], "d1"),
                                          ("a dog", "un perro", ["un gato"], "un perro"),
                                          ("a cow", 'una "vaca"\nlechera', [], 'una "vaca"\nlechera')]


def test_csv_anchor_document_aliases(tmp_path):
    path = write_csv(tmp_path / "p.csv", ["anchor", "document"], [["x", "y"], ["z", "w"]])
    assert pairs_of(read_pairs(path)) == [("x", "y", None, "y"), ("z", "w", None, "w")]


def test_parquet_needs_a_reader(tmp_path):
    path = tmp_path / "p.parquet"
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        path.write_bytes(b"PAR1")
        with pytest.raises(ImportError, match=r"reading p.parquet needs a Parquet reader: `pip install pyarrow`"):
            read_pairs(path)
        return
    pq.write_table(pa.table({"query": ["q1", "q2"], "positive": ["d1", "d2"], "negatives": [["n"], []]}), path)
    assert pairs_of(read_pairs(path)) == [("q1", "d1", ["n"], "d1"), ("q2", "d2", [], "d2")]


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"`path` must end in .jsonl, .csv or .parquet, got '.*p.txt'"):
        read_pairs(tmp_path / "p.txt")
    with pytest.raises(FileNotFoundError, match=r"`path` '.*nope.jsonl' does not exist"):
        read_pairs(tmp_path / "nope.jsonl")


# ---- malformed lines -------------------------------------------------------------------------------------

GOOD = {"query": "q", "positive": "d"}


@pytest.mark.parametrize("bad, why", [
    ({"query": "q"}, "missing field 'positive' (or 'document')"),
    ({"positive": "d"}, "missing field 'query' (or 'anchor')"),
    ({"query": 3, "positive": "d"}, "field 'query' must be a string, got int 3"),
    ({"query": "  ", "positive": "d"}, "field 'query' must be a non-empty string, got '  '"),
    ({"query": "q", "anchor": "a", "positive": "d"}, "has both 'query' and 'anchor'; give one"),
    ({"query": "q", "positive": "d", "negatives": "n"}, "field 'negatives' must be a list, got str 'n'"),
    ({"query": "q", "positive": "d", "negatives": ["n", 5]}, "field 'negatives' item 1 must be a non-empty string"),
    ({"query": "q", "positive": "d", "positive_id": 1.5}, "field 'positive_id' must be a string or an integer id"),
    ('{"query": "q", "positive": ', "invalid JSON (Expecting value at column 28)"),
    ('["q", "d"]', "expected a JSON object, got list"),
])
def test_malformed_line_is_warned_with_line_number_and_noted(tmp_path, bad, why):
    path = jsonl(tmp_path / "pairs.jsonl", [GOOD, GOOD, bad, GOOD])
    with pytest.warns(UserWarning) as caught:
        data = read_pairs(path)
    msg = str(caught[0].message)
    assert msg.startswith("pairs.jsonl: skipped 1 of 4 lines: line 3: ") and why in msg
    assert len(data.train) == 3
    assert any(n.startswith("pairs.jsonl: skipped 1 of 4 malformed lines (line 3: ") for n in data.notes)


def test_csv_malformed_rows_name_their_lines(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text('query,positive,negatives\nq1,d1,\nq2,,\nq3,d3,"[1"\nq4,d4,,extra\nq5,d5,\nq6,d6,\nq7,d7,\n')
    with pytest.warns(UserWarning) as caught:
        data = read_pairs(path)
    msg = str(caught[0].message)
    assert "skipped 3 of 7 lines" in msg
    assert "line 3: missing field 'positive' (or 'document')" in msg
    assert "line 4: field 'negatives' must hold a JSON-encoded list in CSV, got '[1'" in msg
    assert "line 5: 1 more values than the 3 header columns" in msg
    assert data.train.anchors == ["q1", "q5", "q6", "q7"]


def test_first_few_shown_then_count(tmp_path):
    path = jsonl(tmp_path / "p.jsonl", [GOOD] * 10 + [{"query": "q"}] * 7)
    with pytest.warns(UserWarning, match=r"line 15: missing field 'positive' \(or 'document'\); \.\.\. and 2 more"):
        read_pairs(path)


def test_mostly_invalid_file_is_refused(tmp_path):
    path = jsonl(tmp_path / "pairs.jsonl", [GOOD, "not json", {"q": 1}, GOOD, "[]"])
    with pytest.raises(ValueError, match=r"pairs.jsonl: refused, 3 of 5 lines are invalid \(more than half\): "
                                         r"line 2: invalid JSON"):
        read_pairs(path)


def test_exactly_half_invalid_is_accepted_with_a_warning(tmp_path):
    path = jsonl(tmp_path / "p.jsonl", [GOOD, "x", GOOD, "y"])
    with pytest.warns(UserWarning, match=r"skipped 2 of 4 lines"):
        assert len(read_pairs(path).train) == 2


@pytest.mark.parametrize("name, content, msg", [
    ("e.jsonl", "", r"e.jsonl is empty"),
    ("e.jsonl", "\n  \n", r"e.jsonl is empty"),
    ("e.csv", "", r"e.csv is empty"),
    ("e.csv", "query,positive\n", r"e.csv has a header row but no data rows"),
])
def test_empty_files(tmp_path, name, content, msg):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=msg):
        read_pairs(tmp_path / name)


# ---- corpus files and click logs -------------------------------------------------------------------------

def test_corpus_jsonl_and_csv(tmp_path):
    ids, texts, notes = read_corpus(jsonl(tmp_path / "c.jsonl", [{"id": 1, "text": "one"}, {"id": "b", "text": "bee"}]))
    assert (ids, texts, notes) == (["1", "b"], ["one", "bee"], [])
    path = write_csv(tmp_path / "c.csv", ["id", "text"], [["x", "ex"], ["y", "why, not"]])
    assert read_corpus(path)[:2] == (["x", "y"], ["ex", "why, not"])


def test_corpus_duplicate_id_names_both_lines(tmp_path):
    path = jsonl(tmp_path / "docs.jsonl", [{"id": "a", "text": "1"}, {"id": "b", "text": "2"},
                                           {"id": "a", "text": "3"}])
    with pytest.raises(ValueError, match=r"docs.jsonl line 3: duplicate id 'a' \(first on line 1\)"):
        read_corpus(path)


def test_corpus_malformed_line(tmp_path):
    path = jsonl(tmp_path / "docs.jsonl", [{"id": "a", "text": "1"}, {"id": "b"}, {"id": "c", "text": "3"}])
    with pytest.warns(UserWarning, match=r"docs.jsonl: skipped 1 of 3 lines: line 2: missing field 'text'"):
        assert read_corpus(path)[0] == ["a", "c"]


def test_clicks_with_corpus(tmp_path):
    corpus = jsonl(tmp_path / "docs.jsonl", [{"id": i, "text": f"doc {i}"} for i in range(1, 6)])
    log = jsonl(tmp_path / "log.jsonl", [
        {"query": "red shoes", "shown": [1, 2, 3], "clicked": [2]},
        {"query": "red shoes", "shown": [2, 3, 4], "clicked": [3]},      # 3 was clicked for this query: no negative
        {"query": "hats", "shown": [5, 1], "clicked": [5, 1]},
        {"query": "socks", "shown": [1, 2], "clicked": []},
    ])
    data = read_clicks(log, corpus=corpus)
    assert pairs_of(data) == [("red shoes", "doc 2", ["doc 1"], "2"), ("red shoes", "doc 3", ["doc 4"], "3"),
                              ("hats", "doc 5", [], "5"), ("hats", "doc 1", [], "1")]
    assert "1 impressions without clicks give no pairs" in data.notes


def test_clicks_missing_from_corpus_are_counted(tmp_path):
    corpus = jsonl(tmp_path / "docs.jsonl", [{"id": "a", "text": "A"}, {"id": "b", "text": "B"}])
    log = jsonl(tmp_path / "log.jsonl", [{"query": "q", "shown": ["a", "zz", "b"], "clicked": ["a", "x1", "x2"]},
                                         {"query": "r", "clicked": ["b"]}])
    with pytest.warns(UserWarning, match=r"log.jsonl: 2 clicked ids are not in the corpus and were skipped "
                                         r"\(line 1: 'x1', 'x2'\)"):
        data = read_clicks(log, corpus=corpus)
    assert pairs_of(data) == [("q", "A", ["B"], "a"), ("r", "B", [], "b")]
    assert any(n.startswith("log.jsonl: 2 clicked ids are not in the corpus") for n in data.notes)
    assert "1 shown-but-not-clicked ids are not in the corpus: not used as negatives" in data.notes


def test_clicks_without_corpus_are_texts(tmp_path):
    log = jsonl(tmp_path / "log.jsonl", [{"query": "q", "shown": ["x", "y"], "clicked": ["y"]}])
    assert pairs_of(read_clicks(log)) == [("q", "y", ["x"], "y")]


@pytest.mark.parametrize("bad, why", [
    ({"query": "q"}, "missing field 'clicked'"),
    ({"query": "q", "clicked": "a"}, "field 'clicked' must be a list, got str 'a'"),
    ({"query": "q", "clicked": ["a", None]}, "field 'clicked[1]' must be a string or an integer id"),
    ({"query": "q", "shown": 3, "clicked": ["a"]}, "field 'shown' must be a list, got int 3"),
])
def test_clicks_malformed(tmp_path, bad, why):
    log = jsonl(tmp_path / "log.jsonl", [{"query": "q", "clicked": ["a"]}] * 2 + [bad])
    with pytest.warns(UserWarning, match=r"log.jsonl: skipped 1 of 3 lines: line 3: " + why.replace("[", r"\[")
                      .replace("]", r"\]")):
        read_clicks(log)


def test_clicks_must_be_jsonl(tmp_path):
    with pytest.raises(ValueError, match=r"`path` of a click log must be a .jsonl file, got '.*log.csv'"):
        read_clicks(tmp_path / "log.csv")


# ---- the split -------------------------------------------------------------------------------------------

def many_rows(n_queries=300, per_query=3):
    return [{"query": f"query number {q}", "positive": f"doc {q}-{k}"} for q in range(n_queries)
            for k in range(per_query)] + [{"query": "shared 1", "positive": "doc 0-0"}]


def test_split_never_leaks_and_relevant_are_the_positives(tmp_path):
    rows = many_rows()
    data = read_pairs(jsonl(tmp_path / "p.jsonl", rows))
    test = data.test
    assert 10 <= len(test.queries) <= 60                                    # ~10% of 301 distinct queries
    assert not set(test.queries) & set(data.train.anchors)
    assert len(set(test.queries)) == len(test.queries)
    positives = {}
    for r in rows:
        positives.setdefault(r["query"], set()).add(r["positive"])
    for q, rel in zip(test.queries, test.relevant):
        assert all(0 <= i < len(test.corpus) for i in rel)
        assert {test.corpus[i] for i in rel} == positives[q]
    assert len(data.train) + sum(len(positives[q]) for q in test.queries) == len(rows)
    assert sorted(test.corpus) == sorted({r["positive"] for r in rows})      # train documents are distractors
    assert any("training ones included" in n for n in data.notes)


def test_split_is_deterministic_and_independent_of_order(tmp_path):
    rows = many_rows()
    a = read_pairs(jsonl(tmp_path / "a.jsonl", rows))
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    b = read_pairs(jsonl(tmp_path / "b.jsonl", shuffled))
    assert a.test.queries == read_pairs(tmp_path / "a.jsonl").test.queries
    assert set(a.test.queries) == set(b.test.queries)


def test_small_file_has_no_test_split(tmp_path):
    data = read_pairs(jsonl(tmp_path / "p.jsonl", many_rows(n_queries=48)))
    assert data.test is None
    assert any(n.startswith("no test split: only 49 distinct queries") for n in data.notes)


def test_split_queries_caps_and_never_empty():
    queries = [f"q{i}" for i in range(500)]
    held, note = split_queries(queries, max_test=3)
    assert len(held) == 3 and "at most 3" in note
    held, _ = split_queries(queries[:60], fraction=1e-9)
    assert len(held) == 1


def test_clicks_split_uses_the_whole_corpus(tmp_path):
    corpus = jsonl(tmp_path / "docs.jsonl", [{"id": i, "text": f"doc {i}"} for i in range(400)])
    log = jsonl(tmp_path / "log.jsonl", [{"query": f"q{i}", "shown": [i, i + 1], "clicked": [i]} for i in range(200)])
    data = read_clicks(log, corpus=corpus)
    assert len(data.test.corpus) == 400 and data.test.doc_ids[7] == "7"
    for q, rel in zip(data.test.queries, data.test.relevant):
        assert [data.test.doc_ids[i] for i in rel] == [q[1:]]
    assert not set(data.test.queries) & set(data.train.anchors)


def test_unicode_line_separators_and_crlf_are_not_line_breaks(tmp_path):
    lines = '{"query": "a\u2028b", "positive": "c\u0085d"}\r\n{"query": "e", "positive": "f"}\r\n'
    (tmp_path / "p.jsonl").write_text(lines, newline="")
    assert pairs_of(read_pairs(tmp_path / "p.jsonl")) == [("a\u2028b", "c\u0085d", None, "c\u0085d"),
                                                          ("e", "f", None, "f")]
    (tmp_path / "p.csv").write_text('query,positive\r\n"x\u2028y",z\r\n', newline="")
    assert pairs_of(read_pairs(tmp_path / "p.csv")) == [("x\u2028y", "z", None, "z")]


def test_not_utf8(tmp_path):
    (tmp_path / "p.jsonl").write_bytes(b'{"query": "caf\xe9", "positive": "x"}\n')
    with pytest.raises(ValueError, match=r"p.jsonl is not UTF-8 text \(byte 14: invalid continuation byte\)"):
        read_pairs(tmp_path / "p.jsonl")
