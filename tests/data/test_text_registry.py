"""The text dataset registry: names, path forms, options, errors."""

import json

import pytest

from contrastlab.data import TextData, list_text_datasets, load_text, register_text_dataset
from contrastlab.data import registry
from contrastlab.data.text import PairData


@pytest.fixture
def fresh(monkeypatch):
    """A copy of the registry, so toy loaders do not leak into other tests."""
    monkeypatch.setattr(registry, "DATASETS", dict(registry.DATASETS))


def toy(path, *, root, flavour="plain"):
    return TextData(name=f"toy:{path}", train=PairData(anchors=["a"], positives=["b"]), notes=[root, flavour])


def test_builtins_registered():
    assert {"pairs", "clicks", "interactions", "verses-en-es", "verses-es-en", "wordnet", "wordnet-synonyms",
            "movielens-100k"} <= set(list_text_datasets())


def test_names_aliases_case_root_and_options(fresh):
    register_text_dataset("toy", aliases=("toy-alias",), options=("flavour",))(toy)
    assert load_text(" TOY-Alias ", root="/r").notes == ["/r", "plain"]
    assert load_text("toy", flavour="salty").notes == [None, "salty"]
    with pytest.raises(ValueError, match=r"`colour` is not an option of text dataset 'toy' \(its options: flavour\)"):
        load_text("toy", colour="red")


def test_path_forms(fresh):
    register_text_dataset("ext", takes_path=True, suffixes=(".ext",))(toy)
    assert load_text("ext:some/where.bin").name == "toy:some/where.bin"
    assert load_text("Data/File.EXT").name == "toy:Data/File.EXT"
    with pytest.raises(ValueError, match=r"`spec` 'ext:' names no path after 'ext:'"):
        load_text("ext:")


def test_pair_file_forms_load(tmp_path):
    rows = [{"query": "a cat", "positive": "un gato"}, {"query": "a dog", "positive": "un perro"}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "train.csv").write_text("query,positive\na cat,un gato\na dog,un perro\n")
    for spec in (f"pairs:{tmp_path}/train.jsonl", str(tmp_path / "train.jsonl"), str(tmp_path / "train.csv"),
                 f"PAIRS:{tmp_path}/train.csv"):
        data = load_text(spec)
        assert (data.train.anchors, data.train.positives) == (["a cat", "a dog"], ["un gato", "un perro"]), spec


def test_clicks_form_with_corpus_option(tmp_path):
    (tmp_path / "docs.jsonl").write_text('{"id": "d1", "text": "one"}\n{"id": "d2", "text": "two"}\n')
    (tmp_path / "log.jsonl").write_text('{"query": "q", "shown": ["d1", "d2"], "clicked": ["d2"]}\n')
    data = load_text(f"clicks:{tmp_path}/log.jsonl", corpus=str(tmp_path / "docs.jsonl"))
    assert (data.train.anchors, data.train.positives, data.train.negatives) == (["q"], ["two"], [["one"]])
    with pytest.raises(ValueError, match=r"`corpus` is not an option of text dataset 'pairs' \(its options: none\)"):
        load_text(str(tmp_path / "log.jsonl"), corpus="x")


def test_interactions_form(tmp_path):
    (tmp_path / "ev.csv").write_text("user,item,timestamp\nu,a,1\nu,b,2\n")
    data = load_text(f"interactions:{tmp_path}/ev.csv")
    assert (data.train.anchors, data.train.positives) == (["i_a"], ["i_b"])


def test_parquet_is_a_pair_file(tmp_path):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        (tmp_path / "p.parquet").write_bytes(b"PAR1")
        with pytest.raises(ImportError, match=r"pip install pyarrow"):
            load_text(str(tmp_path / "p.parquet"))
    else:
        assert registry.resolve_dataset(str(tmp_path / "p.parquet"))[0].name == "pairs"


def test_duplicate_and_bad_names(fresh):
    with pytest.raises(ValueError, match=r"a text dataset named 'wordnet' is already registered"):
        register_text_dataset("wordnet")
    with pytest.raises(ValueError, match=r"a text dataset named 'verses' is already registered"):
        register_text_dataset("new", aliases=("verses",))
    for bad in ("Upper", "a:b", ""):
        with pytest.raises(ValueError, match=r"text dataset names must be non-empty lower-case str without ':'"):
            register_text_dataset(bad)
    with pytest.raises(ValueError, match=r"`suffixes` must be lower-case str starting with '.', got 'txt'"):
        register_text_dataset("new", suffixes=("txt",))


def test_unknown_spec_lists_names_and_forms():
    with pytest.raises(ValueError) as info:
        load_text("imdb")
    msg = str(info.value)
    assert "got 'imdb'" in msg and "verses-en-es (alias verses)" in msg and "wordnet-synonyms" in msg
    for form in ("pairs:PATH", "PATH.jsonl", "PATH.csv", "PATH.parquet", "clicks:PATH", "interactions:PATH"):
        assert form in msg


@pytest.mark.parametrize("kw, exc, msg", [
    (dict(spec=""), ValueError, r"`spec` must be a non-empty str, got ''"),
    (dict(spec=None), ValueError, r"`spec` must be a non-empty str, got None"),
    (dict(spec="wordnet", root=3), TypeError, r"`root` must be a str path or None, got int"),
])
def test_bad_arguments(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        load_text(**kw)
