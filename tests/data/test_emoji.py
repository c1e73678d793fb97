"""Emoji image-text data: real Noto Color Emoji renders, Unicode groups, names in 14 languages, the split.

The full data set is rendered once per module into a private cache (about 10 s on 2 cores); every other real-data
check reads that one load. Tests skip with the reason when the font, unicode-data or `emoji` is missing.
"""

import os
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from contrastlab.data import ImageTextData, load_image_text
from contrastlab.data import emoji as emoji_mod
from contrastlab.data.emoji import (LANGUAGES, base_key, clean_name, find_emoji_test, find_font, has_skin_tone,
                                    read_emoji_test, split_emoji)


def _available():
    try:
        find_font(), find_emoji_test()
        import emoji  # noqa: F401
    except (FileNotFoundError, ImportError) as e:
        return str(e)
    return None


MISSING = _available()
needs_data = pytest.mark.skipif(MISSING is not None, reason=f"emoji data not installed: {MISSING}")
GROUPS = ("Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
          "Activities", "Objects", "Symbols", "Flags")


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory):
    return tmp_path_factory.mktemp("emoji-cache")


@pytest.fixture(scope="module")
def data(cache_home):
    if MISSING is not None:
        pytest.skip(f"emoji data not installed: {MISSING}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(cache_home))
        return load_image_text("emoji", size=32)


def _status_count(path: Path, status: str) -> int:
    """The file's own summary line, e.g. '# fully-qualified : 3655'."""
    return int(re.search(rf"^# {status} : (\d+)$", path.read_text(encoding="utf-8"), re.M).group(1))


# ---- the source file and the pure helpers -----------------------------------------------------------------


@needs_data
def test_read_emoji_test_matches_the_files_own_counts():
    path = find_emoji_test()
    entries = read_emoji_test(path)
    assert len(entries) == _status_count(path, "fully-qualified")
    assert tuple(dict.fromkeys(e.group for e in entries)) == GROUPS            # "Component" has no such emoji
    assert entries[0] == ("\U0001F600", "Smileys & Emotion", "face-smiling", "grinning face")
    toned = [e for e in entries if any(0x1F3FB <= ord(c) <= 0x1F3FF for c in e.text)]
    assert sum(has_skin_tone(e.text) for e in entries) == len(toned) > 1000


def test_base_key_joins_skin_tone_and_gender_variants():
    officer = ["👮", "👮\u200d♀️", "👮🏻\u200d♂️", "👮🏿"]
    assert len({base_key(s) for s in officer}) == 1
    assert base_key("👍🏽") == base_key("👍") == "1F44D"
    assert base_key("👩🏿\u200d💻") == base_key("🧑\u200d💻") == "1F9D1 200D 1F4BB"
    assert base_key("♀️") == "2640"                                             # the sign alone stays itself
    assert base_key("😀") != base_key("😃")
    assert clean_name(":Svalbard_&_Jan_Mayen:") == "Svalbard & Jan Mayen"


@needs_data
def test_split_keeps_every_base_emoji_on_one_side_and_covers_every_group():
    entries = read_emoji_test(find_emoji_test())                               # with skin tones: 3.6k
    is_test = split_emoji([e.text for e in entries], [e.group for e in entries])
    side: dict[str, set] = {}
    for e, t in zip(entries, is_test):
        side.setdefault(base_key(e.text), set()).add(bool(t))
    assert all(len(s) == 1 for s in side.values())
    by_text = dict(zip((e.text for e in entries), is_test))
    assert len({by_text[s] for s in ("👍", "👍🏻", "👍🏼", "👍🏽", "👍🏾", "👍🏿")}) == 1
    assert set(Counter(e.group for e, t in zip(entries, is_test) if t)) == set(GROUPS)
    assert 0.10 < is_test.mean() < 0.20
    # A group the hash leaves without test emoji gets one: two keys, a fraction so small no hash falls below it.
    assert split_emoji(["😀", "😃", "🐶"], ["a", "a", "b"], fraction=1e-12).tolist().count(True) == 1


# ---- the real data set ------------------------------------------------------------------------------------


@needs_data
def test_counts_groups_and_known_facts(data):
    entries = read_emoji_test(find_emoji_test())
    plain = [e for e in entries if not has_skin_tone(e.text)]
    assert isinstance(data, ImageTextData) and data.modality == "image_text"
    assert 1800 <= len(data.ids) <= len(plain) == 1870                          # Unicode 15.0 without skin tones
    assert data.images.shape == (len(data.ids), 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.classes == GROUPS and 90 <= len(data.subclasses) <= 101
    assert len(data) == len(data.train_indices()) == len(data.ids) - len(data.test_indices())
    i = data.ids.index("\U0001F600")
    assert data.classes[data.labels[i]] == "Smileys & Emotion"
    assert data.subclasses[data.sublabels[i]] == "face-smiling"
    assert data.texts["en"][i] == "grinning face" and "cara" in data.texts["es"][i]
    assert tuple(data.texts) == LANGUAGES and data.missing_texts() == {lang: 0 for lang in LANGUAGES}
    flags = data.sublabels == data.subclasses.index("country-flag")
    assert int(flags.sum()) == 258                                             # RGI flag sequences in 15.0
    assert not any(has_skin_tone(s) for s in data.ids)


@needs_data
def test_no_emoji_or_name_on_both_sides(data):
    train, test = data.train_indices().tolist(), data.test_indices().tolist()
    assert set(train).isdisjoint(test) and len(train) + len(test) == len(data.ids)
    assert {data.ids[i] for i in train}.isdisjoint(data.ids[i] for i in test)
    for lang, names in data.texts.items():
        assert {names[i] for i in train}.isdisjoint(names[i] for i in test), lang
    keys = [base_key(s) for s in data.ids]
    assert {keys[i] for i in train}.isdisjoint(keys[i] for i in test)
    assert set(data.labels[data.split].tolist()) == set(range(9))              # every group has test emoji
    idx, names = data.pairs("ja", test=True)
    assert idx.tolist() == test and names == [data.texts["ja"][i] for i in test]


@needs_data
def test_images_are_drawn_on_white(data):
    x = data.images.double()                                                   # (N, 3, 32, 32)
    assert (x.flatten(1).std(dim=1) > 0).all()                                 # nothing blank
    corners = data.images[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]                # (N, 3, 4)
    assert (corners == 255).float().mean() > 0.8                               # a white background mostly
    red = data.images[data.ids.index("🟥")].double().mean(dim=(1, 2))         # red square: R high, G and B low
    assert red[0] > 150 and red[1] < red[0] - 60 and red[2] < red[0] - 60


@needs_data
def test_cache_round_trip(data, cache_home, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    files = list(Path(cache_home, "contrastlab", "emoji").glob("*.npz"))
    assert len(files) == 1
    again = load_image_text("emoji", size=32, languages=("en", "ko"))
    assert "(from the cache)" in again.notes[0] and "(from the cache)" not in data.notes[0]
    assert again.ids == data.ids and torch.equal(again.images, data.images)
    assert torch.equal(again.split, data.split) and again.texts["ko"] == data.texts["ko"]


# ---- a small copy of the source, to test skipping and the cache key cheaply ---------------------------------


@pytest.fixture
def small_root(tmp_path):
    if MISSING is not None:
        pytest.skip(f"emoji data not installed: {MISSING}")
    keep = (["1F600"], ["1F44D"], ["1F44D", "1F3FD"], ["1F1EF", "1F1F5"])
    lines = [ln for ln in find_emoji_test().read_text(encoding="utf-8").splitlines()
             if ln.startswith(("# group:", "# subgroup:")) or ln.partition(";")[0].split() in keep]
    lines += ["1FAE9 ; fully-qualified # \U0001FAE9 E16.0 not in a 2023 font",           # blank render
              "1F600 200D 1F600 ; fully-qualified # x E0.0 not a real sequence"]       # several glyphs
    (tmp_path / "emoji-test.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.symlink(find_font(), tmp_path / "NotoColorEmoji.ttf")
    return tmp_path


def test_undrawable_emoji_are_counted_and_skin_tones_optional(small_root):
    data = load_image_text("emoji", root=small_root, size=8, languages="es", skin_tones=True)
    assert data.ids == ("😀", "👍", "👍🏽", "🇯🇵")
    assert data.images.shape == (4, 3, 8, 8) and list(data.texts) == ["es"]
    assert any("skipped 1 emoji the font cannot draw (blank)" in n for n in data.notes)
    assert any("skipped 1 emoji the font cannot draw (several glyphs)" in n for n in data.notes)
    assert data.split[1] == data.split[2]
    assert load_image_text("emoji", root=small_root, size=8).ids == ("😀", "👍", "🇯🇵")


def test_cache_key_follows_the_source_file(small_root):
    first = load_image_text("emoji", root=small_root, size=8, languages=("en",))
    assert "(from the cache)" in load_image_text("emoji", root=small_root, size=8, languages=("en",)).notes[0]
    path = small_root / "emoji-test.txt"
    path.write_text(path.read_text(encoding="utf-8").replace("1F1EF 1F1F5 ", "#"), encoding="utf-8")
    changed = load_image_text("emoji", root=small_root, size=8, languages=("en",))
    assert "(from the cache)" not in changed.notes[0] and changed.ids == first.ids[:-1]


# ---- errors -----------------------------------------------------------------------------------------------


def test_missing_sources_name_the_package_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(emoji_mod, "FONT_DIRS", (tmp_path,))
    monkeypatch.setattr(emoji_mod, "UNICODE_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"NotoColorEmoji\.ttf.*apt-get install fonts-noto-color-emoji"):
        find_font(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"emoji-test\.txt.*apt-get install unicode-data"):
        find_emoji_test(str(tmp_path))
    monkeypatch.setitem(sys.modules, "emoji", None)
    with pytest.raises(ImportError, match=r"pip install 'emoji>=2\.10'"):
        load_image_text("emoji", root=tmp_path)


@pytest.mark.parametrize("options, message", [
    ({"size": 0}, r"`size` must be an int in \[1, 512\], got 0"),
    ({"languages": ("en", "xx")}, r"`languages` must be a non-empty subset of en, es, .*, got 'xx'"),
    ({"skin_tones": "yes"}, r"`skin_tones` must be a bool, got str"),
    ({"colour": True}, r"`colour` is not an option of image-text dataset 'emoji'"),
])
def test_bad_options(options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        load_image_text("emoji", **options)


def test_bad_emoji_test_file(tmp_path):
    path = tmp_path / "emoji-test.txt"
    path.write_text("# group: A\n# subgroup: b\n1F6ZZ ; fully-qualified # ? E1.0 bad\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 3: code points must be hex numbers, got '1F6ZZ'"):
        read_emoji_test(path)
    path.write_text("1F600 ; unqualified # x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no fully-qualified emoji"):
        read_emoji_test(path)


def test_container_validates_shapes():
    ok = dict(name="t", images=torch.zeros(2, 3, 4, 4, dtype=torch.uint8), texts={"en": ["a", "b"]},
              split=torch.tensor([False, True]), ids=("a", "b"))
    ImageTextData(**ok)
    cases = [({"images": torch.zeros(2, 1, 4, 4, dtype=torch.uint8)}, r"`images` must be RGB.*got C=1"),
             ({"texts": {"en": ["a"]}}, r"`texts\['en'\]` must be a list of N = 2 entries like `images`, got 1"),
             ({"texts": {"en": ["a", 3]}}, r"`texts\['en'\]\[1\]` must be a str or None, got int 3"),
             ({"split": torch.tensor([0, 1])}, r"`split` must be a bool tensor of shape \(N,\) = \(2,\)"),
             ({"ids": ("a", "a")}, r"`ids` must be unique, got 'a' twice"),
             ({"labels": torch.tensor([0, 1])}, r"`labels` and `classes` must be given together"),
             ({"labels": torch.tensor([0, 2]), "classes": ("x", "y")}, r"`labels` must hold labels in \[0, 2\)"),
             ({"sublabels": torch.tensor([0]), "subclasses": ("x",)}, r"`sublabels` must have shape \(N,\) = \(2,\)")]
    for change, message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            ImageTextData(**{**ok, **change})
    with pytest.raises(ValueError, match=r"`language` must be one of en, got 'fr'"):
        ImageTextData(**ok).pairs("fr")


def test_spec_errors():
    with pytest.raises(ValueError, match=r"`spec` must name a registered image-text dataset.*emoji"):
        load_image_text("emojis")
    with pytest.raises(ValueError, match=r"names no path after 'captions:'"):
        load_image_text("captions:")
