"""English–Spanish verse pairs: markup cleaning, alignment, the chapter split, the cache, the real modules."""

from types import SimpleNamespace

import pytest

from contrastlab.data import load_text
from contrastlab.data import verses
from contrastlab.data.verses import APT_HINT, clean_osis, find_sword_path, load_verses, read_verse_pairs


# ---- pure parts ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, clean", [
    ('<w lemma="strong:G1063">For</w> <w lemma="strong:G2316">God</w> so', "For God so"),
    ('only born</q><note placement="foot"><reference>3:16 </reference>The phrase “only born”</note><q who="Jesus">'
     "<w>Son</w>, that", "only born Son, that"),
    ('God<note placement="foot">a note</note><w>created</w> it<note>n</note>.', "God created it."),
    ('<title canonical="true" type="psalm">A Psalm by David.</title> <lg sID="1"/> <l level="1"/>Yahweh, how',
     "A Psalm by David. Yahweh, how"),
    ('<title type="main">Section heading</title>Text &amp; more', "Text & more"),
    ('<w>su alabanza</w><transChange type="added">sea</transChange><w>en la</w>', "su alabanza sea en la"),
    ('preguntándo<transChange type="added">le</transChange>, y', "preguntándole, y"),
    ('<speaker>Beloved</speaker> <l/>Let him kiss me', "Let him kiss me"),
    ('Amen. <div eID="x" type="book" canonical="true"/> <div type="glossary"/> Glossary text', "Amen."),
    ("  <lb type=\"x-p\"/>  spaced\n out  ", "spaced out"),
])
def test_clean_osis(raw, clean):
    assert clean_osis(raw) == clean


def test_align_drops_empty_and_renumbered_chapters():
    en = {("Gen", 1, 1): "a", ("Gen", 1, 2): "b", ("Gen", 1, 3): "c", ("Gen", 2, 1): "d", ("Gen", 2, 2): "e",
          ("Gen", 3, 1): "f", ("Exod", 1, 1): "g", ("Exod", 1, 2): "h", ("Tob", 1, 1): "only English"}
    es = {("Gen", 1, 1): "A", ("Gen", 1, 2): "B", ("Gen", 1, 3): "", ("Gen", 2, 1): "C", ("Gen", 2, 2): "D",
          ("Gen", 3, 1): "F", ("Exod", 1, 1): "", ("Exod", 1, 2): "H"}
    out = verses._align(en, es)
    # Gen 1 lacks its last verse in Spanish: its numbering differs, so Gen 1 and Gen 2 go; Exod 1:1 is one gap.
    assert out["refs"] == [["Gen", 3, 1], ["Exod", 1, 2]] and out["en"] == ["f", "h"] and out["es"] == ["F", "H"]
    assert (out["empty"], out["renumbered_pairs"], out["renumbered_chapters"]) == (2, 4, ["Gen 1", "Gen 2"])
    assert out["books"] == ["Gen", "Exod"]


def test_missing_modules_say_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(verses, "SYSTEM_DIR", tmp_path / "none")
    monkeypatch.setenv("SWORD_PATH", str(tmp_path / "also-none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "lib" / "mods.d").mkdir(parents=True)
    (tmp_path / "lib" / "mods.d" / "kjv.conf").write_text("[KJV]\nDataPath=./x\n")
    with pytest.raises(FileNotFoundError) as info:
        find_sword_path(str(tmp_path / "lib"))
    msg = str(info.value)
    assert APT_HINT in msg and "engWEB2015eb and spaRV1909eb were not found" in msg and "root" in msg
    assert "(KJV)" in msg and "$SWORD_PATH" in msg
    with pytest.raises(ValueError, match=r"`source` must be 'en' or 'es', got 'fr'"):
        load_verses(source="fr")


# ---- the real modules ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real(tmp_path_factory):
    try:
        find_sword_path()
    except FileNotFoundError:
        pytest.skip(f"the SWORD modules are not installed ({APT_HINT})")
    cache = tmp_path_factory.mktemp("verses-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(cache))
        pairs, first_from_cache = read_verse_pairs()
        again, second_from_cache = read_verse_pairs()
        en_es, es_en = load_text("verses-en-es"), load_text("verses-es-en")
        en_es_again = load_verses()
    return SimpleNamespace(pairs=pairs, again=again, hits=(first_from_cache, second_from_cache), en_es=en_es,
                           es_en=es_en, en_es_again=en_es_again, cache=cache,
                           by_ref={tuple(r): i for i, r in enumerate(pairs["refs"])})


def test_cached_once(real):
    assert real.hits == (False, True) and real.again == real.pairs
    assert len(list(real.cache.glob("contrastlab/verses/*.json"))) == 1
    assert any("(from cache)" in n for n in real.en_es.notes)


def test_counts(real):
    p = real.pairs
    assert 29_000 < len(p["refs"]) < 31_103                  # the KJV versification has 31,102 verses
    assert p["empty"] < 100 and len(p["books"]) == 66
    assert "Jonah 2" in p["renumbered_chapters"]             # Spanish Jonah 2:1 is English Jonah 1:17
    assert ("Jonah", 2, 1) not in real.by_ref and ("Jonah", 3, 1) in real.by_ref


def test_known_verses_aligned_and_clean(real):
    p, i = real.pairs, real.by_ref
    assert p["en"][i["Gen", 1, 1]] == "In the beginning, God created the heavens and the earth."
    assert p["es"][i["Gen", 1, 1]] == "EN el principio crió Dios los cielos y la tierra."
    john = i["John", 3, 16]
    assert "God so loved the world" in p["en"][john] and "eternal life" in p["en"][john]
    assert "Greek" not in p["en"][john]                                       # the footnote is gone
    assert "de tal manera amó Dios al mundo" in p["es"][john] and "vida eterna" in p["es"][john]
    assert p["en"][i["Ps", 3, 1]].startswith("A Psalm by David")              # canonical psalm titles kept,
    assert p["es"][i["Ps", 3, 1]].startswith("Salmo de David")                # as the Spanish has them inline
    for text in p["en"] + p["es"]:
        assert text and "<" not in text and ">" not in text and "  " not in text and text == text.strip()


def test_split_by_chapter_never_leaks(real):
    d = real.en_es
    train_chapters = {pid.rsplit(".", 1)[0] for pid in d.train.positive_ids}
    test_chapters = {doc.rsplit(".", 1)[0] for doc in d.test.doc_ids}
    assert not train_chapters & test_chapters
    assert 0.05 < len(d.test.queries) / (len(d.train) + len(d.test.queries)) < 0.15
    assert not set(d.test.queries) & set(d.train.anchors)
    assert not set(d.test.corpus) & set(d.train.positives)
    en_to_es = {}                                          # over the held-out chapters, from the aligned pairs
    for (b, c, v), en, es in zip(real.pairs["refs"], real.pairs["en"], real.pairs["es"]):
        if f"{b}.{c}" in test_chapters:
            en_to_es.setdefault(en, set()).add(es)
    assert sorted(d.test.queries) == sorted(en_to_es)
    for q, rel in zip(d.test.queries, d.test.relevant):
        assert {d.test.corpus[i] for i in rel} == en_to_es[q]
    assert all(d.classes[label] == pid.split(".")[0] for label, pid in zip(d.train.labels, d.train.positive_ids))


def test_reverse_direction_and_determinism(real):
    a, b = real.en_es, real.es_en
    assert set(zip(b.train.anchors, b.train.positives)) == set(zip(a.train.positives, a.train.anchors))
    assert real.en_es_again.test.queries == a.test.queries
    assert b.name == "verses-es-en" and b.test.queries[0] in set(real.pairs["es"])
