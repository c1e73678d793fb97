"""Emoji images with their names in 14 languages: image–text pairs that install offline.

Images: every fully-qualified emoji of Unicode's ``emoji-test.txt`` (Debian ``unicode-data``) drawn from the
Noto Color Emoji bitmap font (Debian ``fonts-noto-color-emoji``) with Pillow at font size 109 (the only size the
font has), on white, padded to a square and resized to ``size`` (Lanczos, antialiased). Emoji the font cannot
draw (a blank render, or a sequence that falls apart into several glyphs) are skipped and counted. Skin-tone
variants are skipped unless ``skin_tones=True``. The rendered array is cached once per size as ``.npz`` in the
contrastlab cache folder, keyed by the font and emoji-test.txt files, Pillow and the ``emoji`` package versions.

Texts: ``emoji.EMOJI_DATA[ch][lang]`` of PyPI ``emoji`` (colons stripped, underscores turned into spaces).
Labels: the emoji's Unicode group (9 classes) and subgroup (~100) from emoji-test.txt, for zero-shot evaluation.

Split: fixed by emoji, about 15% test, by a seeded hash of the emoji's base key (its code points without skin
tones, variation selectors and gender signs, man/woman/boy/girl read as person/child), so the variants of one
emoji never straddle train and test; a group the hash left without test emoji gets its lowest-hash one.

Example::

    >>> from contrastlab.data import load_image_text
    >>> data = load_image_text("emoji", size=32, languages=("en", "es"))   # doctest: +SKIP
    >>> data.classes[data.labels[0]], data.texts["en"][0], data.texts["es"][0]   # doctest: +SKIP
    ('Smileys & Emotion', 'grinning face', 'cara sonriendo')
    >>> base_key("👮🏽\u200d♀️") == base_key("👮"), clean_name(":keycap_#:")
    (True, 'keycap #')
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import numbers
import os
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from . import limits
from .cache import cache_dir
from .image_text import ImageTextData, register_image_text_dataset
from .text import hash_unit

__all__ = ["LANGUAGES", "EmojiEntry", "read_emoji_test", "find_font", "find_emoji_test", "base_key",
           "has_skin_tone", "split_emoji", "clean_name", "emoji_names", "render_emoji", "load_emoji"]

LANGUAGES = ("en", "es", "ja", "ko", "pt", "it", "fr", "de", "fa", "id", "zh", "ru", "tr", "ar")
FONT_FILE, TEST_FILE = "NotoColorEmoji.ttf", "emoji-test.txt"
FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
UNICODE_DIR = Path("/usr/share/unicode/emoji")
FONT_HINT = "apt-get install fonts-noto-color-emoji"
UNICODE_HINT = "apt-get install unicode-data"
PIP_HINT = "pip install 'emoji>=2.10'"
FONT_SIZE = 109                  # the bitmap strike of Noto Color Emoji: the only size it can be drawn at
TEST_FRACTION = 0.15
_RENDER_VERSION = 1

_SKIN = frozenset(range(0x1F3FB, 0x1F400))                           # Fitzpatrick modifiers
_GENDER = frozenset({0x2640, 0x2642})                                # female / male sign after a ZWJ
_PERSON = {0x1F468: 0x1F9D1, 0x1F469: 0x1F9D1, 0x1F466: 0x1F9D2, 0x1F467: 0x1F9D2}   # man/woman/boy/girl


class EmojiEntry(NamedTuple):
    text: str                    # the emoji's characters
    group: str                   # "Smileys & Emotion"
    subgroup: str                # "face-smiling"
    name: str                    # CLDR short name in English, from the file's comment


def _where(root: str | None) -> list[Path]:
    env = os.environ.get("CONTRASTLAB_DATA")
    return ([Path(root)] if root is not None else []) + ([Path(env, "emoji")] if env else [])


def find_font(root: str | None = None) -> Path:
    """NotoColorEmoji.ttf in ``root``, ``$CONTRASTLAB_DATA/emoji``, or under /usr/share/fonts."""
    for folder in _where(root):
        if (folder / FONT_FILE).is_file():
            return folder / FONT_FILE
    for folder in FONT_DIRS:
        found = sorted(glob.glob(str(folder / "**" / FONT_FILE), recursive=True))
        if found:
            return Path(found[0])
    looked = ", ".join(map(str, _where(root) + list(FONT_DIRS)))
    raise FileNotFoundError(f"the Noto Color Emoji font ({FONT_FILE}) was not found in {looked}; "
                            f"install it with `{FONT_HINT}`")


def find_emoji_test(root: str | None = None) -> Path:
    """emoji-test.txt in ``root``, ``$CONTRASTLAB_DATA/emoji``, or /usr/share/unicode/emoji."""
    folders = _where(root) + [UNICODE_DIR]
    for folder in folders:
        if (folder / TEST_FILE).is_file():
            return folder / TEST_FILE
    raise FileNotFoundError(f"Unicode's {TEST_FILE} was not found in {', '.join(map(str, folders))}; "
                            f"install it with `{UNICODE_HINT}`")


def read_emoji_test(path: str | os.PathLike) -> list[EmojiEntry]:
    """The fully-qualified emoji of an emoji-test.txt file, in file (CLDR) order, with group and subgroup."""
    out, group, subgroup = [], None, None
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("# group:"):
            group = line.partition(":")[2].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.partition(":")[2].strip()
        elif line.strip() and not line.startswith("#"):
            fields, _, comment = line.partition("#")
            codes, _, status = fields.partition(";")
            if status.strip() != "fully-qualified":
                continue
            if group is None or subgroup is None:
                raise ValueError(f"{path} line {n}: emoji before any '# group:' / '# subgroup:' line")
            try:
                text = "".join(chr(int(c, 16)) for c in codes.split())
            except ValueError:
                raise ValueError(f"{path} line {n}: code points must be hex numbers, got {codes.strip()!r}") from None
            name = comment.strip().split(" ", 2)[-1]                  # "😀 E1.0 grinning face" -> "grinning face"
            out.append(EmojiEntry(text, group, subgroup, name))
    if not out:
        raise ValueError(f"{path} holds no fully-qualified emoji; is it Unicode's {TEST_FILE}?")
    return out


def has_skin_tone(text: str) -> bool:
    """Whether ``text`` holds a skin-tone modifier (U+1F3FB..U+1F3FF).

    >>> has_skin_tone("👍🏽"), has_skin_tone("👍")
    (True, False)
    """
    return any(ord(c) in _SKIN for c in text)


def base_key(text: str) -> str:
    """The code points that variants of one emoji share: no skin tones, no U+FE0F, no ZWJ + gender sign, and
    man/woman (boy/girl) read as person (child). Hex, space-separated."""
    cps = [ord(c) for c in text if ord(c) not in _SKIN and ord(c) != 0xFE0F]
    out, i = [], 0
    while i < len(cps):
        if cps[i] == 0x200D and i + 1 < len(cps) and cps[i + 1] in _GENDER:
            i += 2
            continue
        out.append(_PERSON.get(cps[i], cps[i]))
        i += 1
    return " ".join(f"{c:04X}" for c in out)


def split_emoji(texts, groups, *, fraction: float = TEST_FRACTION, seed: int = 0) -> np.ndarray:
    """(N,) bool, True = test: emoji whose base key hashes below ``fraction``, all variants on one side; each
    group with two or more base keys but none held out gets its lowest-hash key held out.

    >>> is_test = split_emoji(["👍", "👍🏽", "😀", "🙂"], ["People", "People", "Smileys", "Smileys"])
    >>> bool(is_test[0] == is_test[1]), bool(is_test[2] or is_test[3])
    (True, True)
    """
    if not 0 < fraction < 1:
        raise ValueError(f"`fraction` must be in (0, 1), got {fraction!r}")
    keys = [base_key(t) for t in texts]
    score = {k: hash_unit(k, seed=seed) for k in set(keys)}
    test_keys = {k for k, s in score.items() if s < fraction}
    by_group: dict[str, set[str]] = {}
    for k, g in zip(keys, groups):
        by_group.setdefault(g, set()).add(k)
    for g, ks in by_group.items():
        if len(ks) >= 2 and not ks & test_keys:
            test_keys.add(min(ks, key=score.__getitem__))
    return np.array([k in test_keys for k in keys], dtype=bool)


def clean_name(name: str) -> str:
    """``":flag_Japan:"`` -> ``"flag Japan"``."""
    if len(name) > 1 and name.startswith(":") and name.endswith(":"):
        name = name[1:-1]
    return name.replace("_", " ").strip()


def _has_raqm() -> bool:
    from PIL import features

    return bool(features.check("raqm"))


def _emoji_module():
    try:
        import emoji
    except ImportError:
        raise ImportError(f"emoji names need the `emoji` package: `{PIP_HINT}`") from None
    return emoji


def emoji_names(texts, languages=LANGUAGES) -> dict[str, list[str | None]]:
    """language -> the name of each emoji in ``texts`` (None where the `emoji` package has none)."""
    emoji = _emoji_module()
    load = getattr(getattr(emoji, "config", None), "load_language", None)
    if load is not None:                                       # emoji >= 2.11 loads non-English names lazily
        load(list(languages))
    data = emoji.EMOJI_DATA
    return {lang: [clean_name(data[t][lang]) if data.get(t, {}).get(lang) else None for t in texts]
            for lang in languages}


def render_emoji(texts, *, size: int, font_path: str | os.PathLike):
    """``(images, kept, skipped)``: (K, 3, size, size) uint8 RGB renders of the drawable ``texts``, their
    indices, and the indices skipped as "blank" (no glyph) or "several glyphs" (a sequence the font lacks).

    >>> images, kept, skipped = render_emoji(["😀", "\U0001FAE9"], size=16, font_path=find_font())  # doctest: +SKIP
    >>> images.shape, kept, skipped                                                       # doctest: +SKIP
    ((1, 3, 16, 16), [0], {'blank': [1], 'several glyphs': []})
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(os.fspath(font_path), FONT_SIZE)
    lanczos = getattr(Image, "Resampling", Image).LANCZOS
    out = np.empty((len(texts), 3, size, size), dtype=np.uint8)                        # (N, 3, size, size)
    kept, skipped = [], {"blank": [], "several glyphs": []}
    for i, text in enumerate(texts):
        left, top, right, bottom = font.getbbox(text)
        w, h = right - left, bottom - top
        if w <= 0 or h <= 0:
            skipped["blank"].append(i)
            continue
        if w > 1.5 * h:
            skipped["several glyphs"].append(i)
            continue
        side = max(w, h)
        canvas = Image.new("RGB", (side, side), (255, 255, 255))
        ImageDraw.Draw(canvas).text(((side - w) // 2 - left, (side - h) // 2 - top), text, font=font,
                                    embedded_color=True)
        pixels = np.asarray(canvas)                                                    # (side, side, 3)
        if pixels.min() == 255:
            skipped["blank"].append(i)
            continue
        if side != size:
            pixels = np.asarray(canvas.resize((size, size), lanczos))
        out[len(kept)] = pixels.transpose(2, 0, 1)
        kept.append(i)
    return out[:len(kept)], kept, skipped


def _rendered(entries: list[EmojiEntry], *, size: int, font: Path, test_file: Path):
    """``(images (N, 3, size, size) uint8, ids, {reason: skipped emoji}, from_cache)``: read from the cache, or
    rendered and cached (atomic .npz)."""
    from PIL import __version__ as pillow_version

    from ..io import atomic_write_bytes

    texts = [e.text for e in entries]
    key = json.dumps({"render": _RENDER_VERSION, "size": size, "pillow": pillow_version,
                      "emoji": getattr(_emoji_module(), "__version__", "?"),
                      "font": [str(font), font.stat().st_size, font.stat().st_mtime_ns],
                      "test": [str(test_file), test_file.stat().st_size, test_file.stat().st_mtime_ns],
                      "texts": hash_unit("\x1e".join(texts))}, sort_keys=True)
    path = cache_dir("emoji", f"noto-{size}px-{hashlib.blake2b(key.encode(), digest_size=6).hexdigest()}.npz")
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return z["images"], z["ids"].tolist(), json.loads(str(z["skipped"])), True
    except (OSError, KeyError, ValueError):
        pass
    images, kept, skipped = render_emoji(texts, size=size, font_path=font)
    ids = [texts[i] for i in kept]
    names = {why: [texts[i] for i in idx] for why, idx in skipped.items()}
    buf = io.BytesIO()
    np.savez_compressed(buf, key=np.array(key), images=images, ids=np.array(ids, dtype=str),
                        skipped=np.array(json.dumps(names, ensure_ascii=False)))
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:                                     # a read-only cache costs speed, not the data
        warnings.warn(f"could not write the emoji cache {path} ({e}); the images will be rendered again",
                      stacklevel=3)
    return images, ids, names, False


@register_image_text_dataset("emoji", options=("size", "languages", "skin_tones"),
                             description="Noto Color Emoji images with names in 14 languages; Unicode groups")
def load_emoji(*, size: int = 64, languages=LANGUAGES, root: str | None = None,
               skin_tones: bool = False) -> ImageTextData:
    """Emoji images, names and Unicode group labels with a fixed split (see the module docstring)."""
    if not isinstance(size, numbers.Integral) or isinstance(size, bool) or not 1 <= size <= 512:
        raise ValueError(f"`size` must be an int in [1, 512], got {size!r}")
    languages = (languages,) if isinstance(languages, str) else tuple(languages)
    bad = [lang for lang in languages if lang not in LANGUAGES]
    if not languages or bad:
        raise ValueError(f"`languages` must be a non-empty subset of {', '.join(LANGUAGES)}, "
                         f"got {(bad[0] if bad else languages)!r}")
    if not isinstance(skin_tones, bool):
        raise TypeError(f"`skin_tones` must be a bool, got {type(skin_tones).__name__}")
    _emoji_module()                                           # fail before rendering when the names are missing
    font, test_file = find_font(root), find_emoji_test(root)
    entries = read_emoji_test(test_file)
    total, toned = len(entries), sum(has_skin_tone(e.text) for e in entries)
    if not skin_tones:
        entries = [e for e in entries if not has_skin_tone(e.text)]
    limits.check_image_bytes("`size`", n=len(entries), channels=3, size=int(size), what="emoji images")
    images, ids, skipped, cached = _rendered(entries, size=int(size), font=font, test_file=test_file)
    if not ids:
        raise ValueError(f"{font}: none of the {len(entries)} emoji of {test_file} could be drawn; is it the Noto "
                         f"Color Emoji font? (reinstall with `{FONT_HINT}`)")
    by_text = {e.text: e for e in entries}
    rows = [by_text[t] for t in ids]
    classes = tuple(dict.fromkeys(e.group for e in rows))
    subclasses = tuple(dict.fromkeys(e.subgroup for e in rows))
    split = split_emoji(ids, [e.group for e in rows])
    texts = emoji_names(ids, languages)
    notes = [f"{len(ids)} emoji drawn from {font} at font size {FONT_SIZE}, padded square on white, "
             f"resized to {size}x{size} (Lanczos){' (from the cache)' if cached else ''}",
             f"skin-tone variants: {toned} of the {total} fully-qualified emoji in {test_file.name}, "
             f"{'kept' if skin_tones else 'skipped'}"]
    for why, lost in skipped.items():
        if lost:
            notes.append(f"skipped {len(lost)} emoji the font cannot draw ({why}): {' '.join(lost[:10])}")
    if len(skipped.get("several glyphs", ())) > len(ids) // 10 and not _has_raqm():
        notes.append("Pillow's text shaping (libraqm) is off, so ZWJ sequences fall apart into several glyphs; "
                     "Pillow's wheels load libfribidi at run time: `apt-get install libfribidi0`")
    missing = {lang: sum(t is None for t in values) for lang, values in texts.items()}
    if any(missing.values()):
        notes.append("emoji without a name: " + ", ".join(f"{k} {v}" for k, v in missing.items() if v))
    notes.append(f"held out {int(split.sum())} of {len(ids)} emoji ({TEST_FRACTION:.0%} by a hash of the base "
                 f"emoji, seed 0): variants of one emoji stay on one side")
    index = {c: i for i, c in enumerate(classes)}, {s: i for i, s in enumerate(subclasses)}
    return ImageTextData(
        name="emoji", images=torch.from_numpy(np.ascontiguousarray(images)), texts=texts,
        split=torch.from_numpy(split), ids=tuple(ids),
        labels=torch.tensor([index[0][e.group] for e in rows], dtype=torch.int64),
        sublabels=torch.tensor([index[1][e.subgroup] for e in rows], dtype=torch.int64),
        classes=classes, subclasses=subclasses, notes=tuple(notes))
