"""Interaction logs: parsing, item tokens, the leave-last-out split, popularity, MovieLens-100k."""

import json

import pytest

from contrastlab.data.interactions import (MOVIELENS_HINT, interactions_to_text_data, item_tokens,
                                           load_movielens_100k, popularity_ranking, read_interactions)


def jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_leave_last_out_by_timestamp(tmp_path):
    # u1's lines are out of order on purpose: the split follows the timestamps, ties keep file order.
    path = jsonl(tmp_path / "ev.jsonl", [
        {"user": "u1", "item": "c", "timestamp": 30}, {"user": "u1", "item": "a", "timestamp": 10},
        {"user": "u1", "item": "b", "timestamp": 20}, {"user": "u1", "item": "d", "timestamp": 40},
        {"user": 2, "item": "b", "timestamp": "2024-01-01T00:00:00Z"}, {"user": 2, "item": "a", "timestamp": 1e10},
        {"user": "u3", "item": "b", "timestamp": 5}, {"user": "u3", "item": "e", "timestamp": 5},
        {"user": "u3", "item": "a", "timestamp": 5},
    ])
    data = read_interactions(path)
    assert list(zip(data.train.anchors, data.train.positives)) == [
        ("i_a", "i_b"), ("i_a i_b", "i_c"),                      # u1: d is the test target
        ("i_b", "i_a"),                                          # user 2: two interactions, training only
        ("i_b", "i_e")]                                          # u3: a is the test target
    test = data.test
    assert test.corpus == ["i_c", "i_a", "i_b", "i_d", "i_e"] and test.doc_ids == ["c", "a", "b", "d", "e"]
    assert test.queries == ["i_a i_b i_c", "i_b i_e"]
    assert [[test.corpus[i] for i in r] for r in test.relevant] == [["i_d"], ["i_a"]]
    assert any("2 users with >= 3 interactions give a test query" in n and "1 users with fewer" in n
               for n in data.notes)


def test_history_is_capped(tmp_path):
    events = [("u", f"m{t}", t) for t in range(8)]
    data = interactions_to_text_data("cap", events, notes=[], max_history=3)
    assert data.train.anchors[-1] == "i_m3 i_m4 i_m5" and data.train.positives[-1] == "i_m6"
    assert data.test.queries == ["i_m4 i_m5 i_m6"]
    assert all(len(a.split()) <= 3 for a in data.train.anchors)


def test_test_event_never_trained_on():
    events = [(f"u{u}", f"it{(u * 7 + t) % 13}", t) for u in range(30) for t in range(5)]
    data = interactions_to_text_data("leak", events, notes=[])
    # Every user contributes exactly len - 2 pairs (the first item has no history, the last is held out).
    assert len(data.train) == 30 * 3
    for q, rel in zip(data.test.queries, data.test.relevant):
        assert (q, data.test.corpus[rel[0]]) not in set(zip(data.train.anchors, data.train.positives))


def test_item_tokens_are_distinct_whitespace_free():
    ids = ["A b", "a-b", "a_b", "", "x/1", "X 1", "ü"]
    tokens = item_tokens(ids)
    assert len(set(tokens.values())) == len(ids)
    assert all(t.startswith("i_") and t.split() == [t] and t == t.lower() for t in tokens.values())
    assert tokens["A b"] == "i_a_b" and tokens["a-b"] == "i_a_b_2" and tokens["a_b"] == "i_a_b_3"


def test_popularity_ranking():
    from contrastlab.data.text import PairData
    train = PairData(anchors=["x"] * 6, positives=["b", "c", "b", "d", "c", "b"])
    assert popularity_ranking(train, ["a", "b", "c", "d", "e"]) == [1, 2, 3, 0, 4]


def test_csv_and_malformed_lines(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user,item,timestamp\nu,a,1\nu,b,2\nu,,3\nu,c,yesterday\nu,d,4\nv,a,1\n")
    with pytest.warns(UserWarning) as caught:
        data = read_interactions(path)
    msg = str(caught[0].message)
    assert msg.startswith("events.csv: skipped 2 of 6 lines: line 4: missing field 'item'")
    assert "line 5: field 'timestamp' must be a number or an ISO 8601 date, got str 'yesterday'" in msg
    assert data.test.queries == ["i_a i_b"] and data.test.corpus[data.test.relevant[0][0]] == "i_d"
    assert any("skipped 2 of 6 malformed lines" in n for n in data.notes)


def test_mostly_invalid_and_empty(tmp_path):
    path = jsonl(tmp_path / "ev.jsonl", [{"user": "u", "item": "a"}, {"user": "u", "item": "b"},
                                         {"user": "u", "item": "c", "timestamp": 1}])
    with pytest.raises(ValueError, match=r"ev.jsonl: refused, 2 of 3 lines are invalid .*line 1: missing field "
                                         r"'timestamp'"):
        read_interactions(path)
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"e.jsonl is empty"):
        read_interactions(tmp_path / "e.jsonl")
    with pytest.raises(ValueError, match=r"`path` of an interaction log must be a .jsonl or .csv file"):
        read_interactions(tmp_path / "e.parquet")
    with pytest.raises(ValueError, match=r"`max_history` must be a positive int, got 0"):
        interactions_to_text_data("x", [("u", "a", 1)], notes=[], max_history=0)


def test_movielens_from_a_folder(tmp_path):
    # The GroupLens u.data layout: user, item, rating, timestamp (tab-separated).
    (tmp_path / "u.data").write_text("1\t10\t5\t300\n1\t20\t3\t100\n1\t30\t4\t200\n2\t10\t1\t5\n2\t20\t2\t6\n")
    data = load_movielens_100k(root=str(tmp_path))
    assert data.test.queries == ["i_20 i_30"] and data.test.corpus[data.test.relevant[0][0]] == "i_10"


def test_movielens_missing_says_how_to_get_it(tmp_path, monkeypatch):
    import importlib.util
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="MovieLens-100k not found") as info:
        load_movielens_100k(root=str(tmp_path))
    assert MOVIELENS_HINT in str(info.value)


def test_real_movielens_100k():
    try:
        data = load_movielens_100k()
    except FileNotFoundError:
        pytest.skip("MovieLens-100k not installed (pip install --no-deps recbole)")
    # Known facts of ML-100k: 100,000 ratings by 943 users (each rated >= 20 movies) of 1,682 movies.
    assert len(data.test.queries) == 943 and len(data.test.corpus) == 1682
    assert len(data.train) == 100_000 - 2 * 943
    ranking = popularity_ranking(data.train, data.test.corpus)
    assert data.test.doc_ids[ranking[0]] == "50"          # Star Wars (1977) is the most rated movie
