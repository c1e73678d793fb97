"""WordNet: the data-file parser, a tiny hand-written WordNet, and the real WordNet 3.0 (when installed)."""

from types import SimpleNamespace

import pytest

from contrastlab.data import load_text
from contrastlab.data import wordnet
from contrastlab.data.wordnet import (APT_HINT, LEXNAMES, document, find_wordnet, load_wordnet, load_wordnet_synonyms,
                                      parse_data_line, read_synsets)

LICENSE = "  1 This software and database is being provided to you, the LICENSEE, by  \n  2 Princeton University  \n"


# ---- the parser ------------------------------------------------------------------------------------------

def test_parse_noun_line():
    line = ("02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 002 @ 02083346 n 0000 ~ 01322604 n 0000 | "
            "a member of the genus Canis (probably descended from the common wolf); occurs in many breeds; "
            '"the dog barked all night"  \n')
    s = parse_data_line(line, pos="n")
    assert s == wordnet.Synset("n02084071", 5, ("dog", "domestic dog", "Canis familiaris"),
                               "a member of the genus Canis (probably descended from the common wolf); occurs in many "
                               "breeds", ("the dog barked all night",))
    assert LEXNAMES[s.lexname] == "noun.animal"


def test_parse_adjective_markers_and_satellites():
    line = ('00014358 00 s 02 abounding 0 galore(ip) 0 001 & 00013887 a 0000 | existing in abundance; '
            '"abounding confidence"; "whiskey galore"  \n')
    s = parse_data_line(line, pos="a")
    assert (s.id, LEXNAMES[s.lexname], s.words) == ("a00014358", "adj.all", ("abounding", "galore"))
    assert s.examples == ("abounding confidence", "whiskey galore") and s.definition == "existing in abundance"


def test_parse_verb_with_frames_and_hex_word_count():
    words = " ".join(f"w{i} 0" for i in range(17))                      # 17 words = "11" in hex
    line = f"00002325 29 v 11 {words} 001 $ 00001740 v 0000 01 + 02 00 | undergo respiration  \n"
    s = parse_data_line(line, pos="v")
    assert len(s.words) == 17 and LEXNAMES[s.lexname] == "verb.body" and s.definition == "undergo respiration"
    assert s.examples == () and document(s).startswith("w0, w1,")


def test_quotes_inside_the_definition_and_attributions():
    s = parse_data_line('00000001 04 n 01 job 0 000 | a workplace; as in the expression "on the job";  ', pos="n")
    assert s.definition == 'a workplace; as in the expression "on the job"' and s.examples == ()
    s = parse_data_line('00000002 10 n 01 quip 0 000 | a witty saying; "brevity is the soul of wit" - Shakespeare',
                        pos="n")
    assert s.definition == "a witty saying" and s.examples == ("brevity is the soul of wit",)


def test_lexnames_are_the_45_supersenses():
    assert len(LEXNAMES) == len(set(LEXNAMES)) == 45
    assert (LEXNAMES[3], LEXNAMES[18], LEXNAMES[29], LEXNAMES[44]) == ("noun.Tops", "noun.person", "verb.body",
                                                                       "adj.ppl")


# ---- a tiny WordNet --------------------------------------------------------------------------------------

def tiny_wordnet(folder, n=60):
    """n noun synsets; every 10th pair of synsets shares a definition (as real WordNet has)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        definition = f"shared sense {i // 2}" if i % 10 < 2 else f"the meaning number {i}"
        lines.append(f"{i:08d} {5 + i % 3:02d} n 02 word{i} 0 other_word{i} 0 000 | {definition}; "
                     f'"an example of word{i}"  ')
    (folder / "data.noun").write_text(LICENSE + "\n".join(lines) + "\n")
    (folder / "data.verb").write_text(LICENSE + "00000001 29 v 01 breathe 0 000 | draw air  \n")
    (folder / "data.adj").write_text(LICENSE)
    (folder / "data.adv").write_text(LICENSE + '00000001 02 r 01 well 0 000 | in a good way; "she sings well"\n')
    return folder


def test_tiny_wordnet_reverse_dictionary(tmp_path):
    root = str(tiny_wordnet(tmp_path / "wn"))
    synsets = read_synsets(root)
    assert len(synsets) == 62 and synsets[-1] == wordnet.Synset("r00000001", 2, ("well",), "in a good way",
                                                                  ("she sings well",))
    data = load_wordnet(root=root, fraction=0.3, test_queries=5, seed=1)
    test = data.test
    assert len(test.queries) == 5 and len(test.corpus) == 62 and test.doc_ids[0] == "n00000000"
    assert not set(test.queries) & set(data.train.anchors)
    defs = {}
    for s in synsets:
        defs.setdefault(s.definition, []).append(s)
    for q, rel, label in zip(test.queries, test.relevant, test.query_labels):
        assert {test.corpus[i] for i in rel} == {document(s) for s in defs[q]}
        assert label == defs[q][0].lexname
    assert len(data.train) + sum(len(v) for d, v in defs.items() if d not in data.train.anchors) == 62
    again = load_wordnet(root=root, fraction=0.3, test_queries=5, seed=1)
    assert again.test.queries == test.queries and again.train.anchors == data.train.anchors


def test_tiny_wordnet_synonyms(tmp_path):
    root = str(tiny_wordnet(tmp_path / "wn"))
    data = load_wordnet_synonyms(root=root, fraction=0.3, test_queries=100)
    train_words = set(data.train.anchors) | set(data.train.positives)
    assert data.test.queries and not set(data.test.queries) & train_words
    for q, rel in zip(data.test.queries, data.test.relevant):
        partner = q[len("other "):] if q.startswith("other ") else "other " + q
        assert [data.test.corpus[i] for i in rel] == [partner]


def test_cache_is_used_and_keyed_by_the_files(tmp_path, private_cache, monkeypatch):
    root = tiny_wordnet(tmp_path / "wn")
    first = read_synsets(str(root))
    assert len(list(private_cache.glob("wordnet/*.json"))) == 1
    with monkeypatch.context() as m:
        m.setattr(wordnet, "_LAST", [None, ()])                        # forget the in-process copy
        m.setattr(wordnet, "parse_data_line", lambda *a, **k: 1 / 0)
        assert read_synsets(str(root)) == first                       # read from the JSON cache, not parsed
    with open(root / "data.verb", "a") as f:
        f.write("00000002 29 v 01 sneeze 0 000 | exhale spasmodically  \n")
    assert read_synsets(str(root))[-2].words == ("sneeze",)          # a changed file is parsed again


def test_missing_wordnet_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(wordnet, "SYSTEM_DIR", tmp_path / "none")
    with pytest.raises(FileNotFoundError, match=r"WordNet 3.0 data files .* not found in .*; install them with "
                                                r"`apt-get install wordnet-base`"):
        find_wordnet(str(tmp_path))
    assert APT_HINT == "apt-get install wordnet-base"


@pytest.mark.parametrize("kw, msg", [
    (dict(seed=-1), r"`seed` must be a non-negative int, got -1"),
    (dict(fraction=1.0), r"`fraction` must be in \(0, 1\), got 1.0"),
    (dict(test_queries=0), r"`test_queries` must be a positive int, got 0"),
])
def test_bad_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg):
        load_wordnet(**kw)


# ---- the real WordNet 3.0 --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real(tmp_path_factory):
    try:
        find_wordnet()
    except FileNotFoundError:
        pytest.skip(f"WordNet is not installed ({APT_HINT})")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("wordnet-cache")))
        synsets = read_synsets()
        return SimpleNamespace(synsets=synsets, again=read_synsets(), rev=load_text("wordnet"),
                               syn=load_text("wordnet-synonyms"))


def test_real_counts_and_a_known_synset(real):
    # WordNet 3.0: 117,659 synsets = 82,115 nouns + 13,767 verbs + 18,156 adjectives + 3,621 adverbs.
    counts = {p: sum(s.id[0] == p for s in real.synsets) for p in "nvar"}
    assert counts == {"n": 82115, "v": 13767, "a": 18156, "r": 3621}
    assert real.again == real.synsets
    dog = next(s for s in real.synsets if s.id == "n02084071")
    assert dog.words == ("dog", "domestic dog", "Canis familiaris") and LEXNAMES[dog.lexname] == "noun.animal"
    assert "Canis" in dog.definition and "the dog barked all night" in dog.examples
    assert not any("_" in w or w.endswith(")") for s in real.synsets for w in s.words)


def test_real_reverse_dictionary(real):
    d, synsets = real.rev, real.synsets
    assert len(d.test.queries) == 2000 and len(d.test.corpus) == 117659 and d.classes == list(LEXNAMES)
    assert 0.93 < len(d.train) / len(synsets) < 0.97
    assert not set(d.test.queries) & set(d.train.anchors)
    by_def = {}
    for s in synsets:
        by_def.setdefault(s.definition, []).append(s)
    for q, rel, label in zip(d.test.queries, d.test.relevant, d.test.query_labels):
        texts = {d.test.corpus[i] for i in rel}
        assert {document(s) for s in by_def[q]} <= texts and label in {s.lexname for s in by_def[q]}
    assert d.train.labels.min() >= 0 and d.train.labels.max() < 45


def test_real_synonyms(real):
    d = real.syn
    assert len(d.test.queries) == 2000 and len(d.test.corpus) > 140_000
    assert not set(d.test.queries) & (set(d.train.anchors) | set(d.train.positives))
    sample = list(zip(d.test.queries, d.test.relevant))[:300]
    words_of = {q: [] for q, _ in sample}
    for s in real.synsets:
        for w in s.words:
            if w in words_of:
                words_of[w].append(set(s.words))
    for q, rel in sample:
        for i in rel:
            assert any(d.test.corpus[i] in words for words in words_of[q])


def test_unwritable_cache_warns_and_still_loads(tmp_path, monkeypatch):
    root = tiny_wordnet(tmp_path / "wn")
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    with pytest.warns(UserWarning, match=r"could not write the cache .*synsets-.*\.json"):
        assert len(read_synsets(str(root))) == 62
