"""English–Spanish verse pairs from two public-domain SWORD modules: a translation-retrieval dataset.

The World English Bible (``engWEB2015eb``, Debian ``sword-text-web``) and the Reina-Valera 1909 (``spaRV1909eb``,
Debian ``sword-text-sparv``) are read with ``pysword`` and matched by (book, chapter, verse). OSIS markup and
footnotes are stripped; verses empty in either module are dropped and counted. Where the two modules number a
chapter differently (a verse one side lacks at the end of a chapter is the sign: the verse moved to the next
chapter, e.g. Jonah 1:17 = 2:1), that chapter and the next are dropped whole, since their verses may not align.
The pairs are cached once as JSON in the contrastlab cache folder, keyed by the module files.

The split is by chapter (a seeded hash of book and chapter, ~10% held out), so neighbouring verses never straddle
train and test; training pairs whose English or Spanish text also occurs in the test chapters (formulae such as
"Yahweh spoke to Moses, saying,") are dropped and counted. Labels are the book (66 classes, OSIS names).

Example::

    >>> from contrastlab.data import load_text
    >>> data = load_text("verses-en-es")                          # doctest: +SKIP
    >>> data.train.anchors[0], data.train.positives[0]            # doctest: +SKIP
    ('In the beginning, God created the heavens and the earth.', 'EN el principio crió Dios los cielos y la tierra.')
    >>> clean_osis('<w lemma="strong:G2316">God</w><note>a note</note><w>so</w> loved , the world.')
    'God so loved, the world.'
"""

from __future__ import annotations

import functools
import hashlib
import html
import os
import re
from pathlib import Path

import numpy as np

from .cache import cache_dir
from .text import PairData, TextData, cached_json, hash_unit, retrieval_set
from .text_registry import register_text_dataset

__all__ = ["MODULES", "APT_HINT", "find_sword_path", "clean_osis", "read_verse_pairs", "load_verses"]

MODULES = {"en": "engWEB2015eb", "es": "spaRV1909eb"}
APT_HINT = "apt-get install sword-text-web sword-text-sparv"
SYSTEM_DIR = Path("/usr/share/sword")
TEST_FRACTION = 0.1
_PARSER_VERSION = 2

_BOOK_END = re.compile(r'<div\b(?=[^>]*\beID=)(?=[^>]*\btype="book")[^>]*>')     # what follows is a glossary
_DROP = re.compile(r'<(note|speaker|catchWord|rdg)\b[^>]*>.*?</\1>'              # footnotes, speaker labels
                   r'|<title\b(?![^>]*canonical="true")[^>]*>.*?</title>', re.S)   # non-canonical headings
_GLUED = re.compile(r'(</w>)(?=<transChange)|(</transChange>)(?=<w\b)')           # RV1909 lost these spaces
_INLINE = re.compile(r"</?(?:w|q|transChange|hi|divineName|seg|name|foreign|reference|a|mentioned|inscription)"
                     r"\b[^>]*>")                                   # unwrapped: their text joins its neighbours
_W_OPEN = re.compile(r"<w\b[^>]*>")
_TAG = re.compile(r"<[^>]*>")                                       # any other tag (line, paragraph): a space
_SPACE_BEFORE = re.compile(r"\s+([,.;:!?)\]”’»])")


def clean_osis(raw: str) -> str:
    """Verse text without OSIS markup: footnotes and non-canonical titles removed, word tags unwrapped, block
    tags turned into spaces, entities decoded, whitespace collapsed (and no space before closing punctuation)."""
    if 'type="book"' in raw:
        end = _BOOK_END.search(raw)
        raw = raw if end is None else raw[:end.start()]
    if "<transChange" in raw:
        raw = _GLUED.sub(lambda m: (m.group(1) or m.group(2)) + " ", raw)
    if "<note" in raw or "<title" in raw or "<speaker" in raw:
        raw = _DROP.sub(" ", raw)
    raw = _W_OPEN.sub("", raw.replace("</w>", ""))                      # the bulk of the markup, fast path
    raw = _TAG.sub(" ", _INLINE.sub("", raw))
    return _SPACE_BEFORE.sub(r"\1", " ".join(html.unescape(raw).split()))


def _sword_candidates(root: str | None) -> list[tuple[str, Path]]:
    out = [] if root is None else [("root", Path(root))]
    out += [("$SWORD_PATH", Path(p)) for p in os.environ.get("SWORD_PATH", "").split(os.pathsep) if p]
    return out + [("Debian", SYSTEM_DIR), ("~/.sword", Path(os.path.expanduser("~/.sword")))]


def _modules_in(folder: Path) -> dict[str, Path]:
    """Module name -> its .conf file, for the modules configured in ``folder/mods.d``."""
    found = {}
    conf_dir = folder / "mods.d"
    if conf_dir.is_dir():
        for conf in sorted(conf_dir.glob("*.conf")):
            with open(conf, encoding="utf-8", errors="replace") as f:
                for line in f:
                    line = line.strip()
                    if line.startswith("[") and line.endswith("]"):
                        found[line[1:-1]] = conf
                        break
    return found


def find_sword_path(root: str | None = None) -> Path:
    """The first SWORD library (`root`, ``$SWORD_PATH``, /usr/share/sword, ~/.sword) holding both modules."""
    tried = []
    for label, folder in _sword_candidates(root):
        have = _modules_in(folder)
        if all(m in have for m in MODULES.values()):
            return folder
        tried.append(f"{label} {folder} ({', '.join(sorted(have)) or 'no modules'})")
    raise FileNotFoundError(f"the SWORD modules {MODULES['en']} and {MODULES['es']} were not found; install them "
                            f"with `{APT_HINT}` (or put a SWORD library in $SWORD_PATH); looked in: {'; '.join(tried)}")


def _read_module(library, name: str) -> dict[tuple[str, int, int], str]:
    """(book, chapter, verse) -> raw OSIS text of every verse the module's versification has."""
    bible = library.get_bible_from_module(name)
    # pysword decompresses a whole book per verse; keep the last few blocks (a 100x speed-up, same text).
    if hasattr(bible, "_decompressed_text"):
        bible._decompressed_text = functools.lru_cache(maxsize=4)(bible._decompressed_text)
    verses = {}
    for testament, books in bible.get_structure().get_books().items():
        for book in books:
            texts = list(bible.get_iter(books=book.osis_name, clean=False))
            refs = [(book.osis_name, c, v) for c, n in enumerate(book.chapter_lengths, 1) for v in range(1, n + 1)]
            if len(texts) != len(refs):
                raise ValueError(f"{name}: {book.osis_name} has {len(texts)} verses, its versification {len(refs)}")
            verses.update(zip(refs, texts))
    return verses


def _align(en: dict, es: dict) -> dict:
    """Match verses by reference; drop empty ones and the chapters whose numbering differs (see module doc)."""
    en = {k: clean_osis(v) for k, v in en.items()}
    es = {k: clean_osis(v) for k, v in es.items()}
    shared = [k for k in en if k in es]                       # in both versifications, canonical order
    last = {}
    for book, ch, v in shared:
        last[(book, ch)] = max(last.get((book, ch), 0), v)
    one_sided = [k for k in shared if bool(en[k]) != bool(es[k])]
    bad = set()
    for book, ch, v in one_sided:
        tail = all(bool(en[(book, ch, w)]) != bool(es[(book, ch, w)]) for w in range(v, last[(book, ch)] + 1))
        if tail:                                              # missing verses run to the chapter's end
            bad |= {(book, ch), (book, ch + 1)}
    keep = [k for k in shared if en[k] and es[k] and k[:2] not in bad]
    empty = sum(1 for k in shared if not (en[k] and es[k]))
    dropped = sum(1 for k in shared if en[k] and es[k] and k[:2] in bad)
    books = list(dict.fromkeys(k[0] for k in keep))
    return {"refs": [list(k) for k in keep], "en": [en[k] for k in keep], "es": [es[k] for k in keep],
            "books": books, "empty": empty, "renumbered_pairs": dropped,
            "renumbered_chapters": sorted(f"{b} {c}" for b, c in bad if (b, c) in last)}


def read_verse_pairs(root: str | None = None) -> tuple[dict, bool]:
    """``(pairs, from_cache)``: the aligned verses, extracted once and cached. ``pairs`` holds ``refs``
    ([book, chapter, verse]), ``en``, ``es``, ``books`` and the counts of what was dropped."""
    folder = find_sword_path(root)
    confs = _modules_in(folder)
    key = {"parser": _PARSER_VERSION, "library": str(folder.resolve()), "modules": {}}
    for name in MODULES.values():
        files = [confs[name], *sorted((folder / _data_path(confs[name])).glob("*"))]
        key["modules"][name] = [[str(f), f.stat().st_size, int(f.stat().st_mtime)] for f in files if f.is_file()]

    def build():
        from pysword.modules import SwordModules

        library = SwordModules(str(folder))
        library.parse_modules()
        return _align(_read_module(library, MODULES["en"]), _read_module(library, MODULES["es"]))

    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).hexdigest()
    return cached_json(cache_dir("verses", f"en-es-{digest}.json"), key=key, build=build)


def _data_path(conf: Path) -> str:
    with open(conf, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.lower().startswith("datapath="):
                return line.split("=", 1)[1].strip()
    raise ValueError(f"{conf} has no DataPath= line")


def load_verses(*, root: str | None = None, source: str = "en", seed: int = 0,
                fraction: float = TEST_FRACTION) -> TextData:
    """Verse pairs with `source` ("en" or "es") as anchors/queries and the other language as documents."""
    if source not in MODULES:
        raise ValueError(f"`source` must be 'en' or 'es', got {source!r}")
    if not 0 < fraction < 1:
        raise ValueError(f"`fraction` must be in (0, 1), got {fraction!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, got {seed!r}")
    pairs, from_cache = read_verse_pairs(root)
    target = "es" if source == "en" else "en"
    src, tgt, refs = pairs[source], pairs[target], pairs["refs"]
    book_index = {b: i for i, b in enumerate(pairs["books"])}
    labels = np.array([book_index[r[0]] for r in refs], dtype=np.int64)
    chapters = dict.fromkeys(f"{b} {c}" for b, c, _ in refs)
    held_chapters = {ch for ch in chapters if hash_unit(ch, seed=seed) < fraction}
    is_test = np.array([f"{b} {c}" in held_chapters for b, c, _ in refs])
    test_idx, train_idx = np.flatnonzero(is_test), np.flatnonzero(~is_test)
    test_queries, test_docs = {src[i] for i in test_idx}, {tgt[i] for i in test_idx}
    leak = [i for i in train_idx if src[i] in test_queries or tgt[i] in test_docs]
    train_idx = np.setdiff1d(train_idx, leak)
    ref_id = [f"{b}.{c}.{v}" for b, c, v in refs]
    train = PairData(anchors=[src[i] for i in train_idx], positives=[tgt[i] for i in train_idx],
                     positive_ids=[ref_id[i] for i in train_idx], labels=labels[train_idx])
    corpus = list(dict.fromkeys(tgt[i] for i in test_idx))
    first_ref, by_query, query_label = {}, {}, {}
    for i in test_idx:                                     # a verse repeated verbatim is one query
        first_ref.setdefault(tgt[i], ref_id[i])
        by_query.setdefault(src[i], {})[tgt[i]] = None
        query_label.setdefault(src[i], labels[i])
    test = retrieval_set(list(by_query), [list(t) for t in by_query.values()], corpus=corpus,
                         doc_ids=[first_ref[t] for t in corpus], query_labels=list(query_label.values()))
    name = f"verses-{source}-{target}"
    notes = [f"{MODULES['en']} (World English Bible) and {MODULES['es']} (Reina-Valera 1909), matched by "
             f"reference: {len(refs)} pairs" + (" (from cache)" if from_cache else ""),
             f"dropped {pairs['empty']} references empty in one or both modules",
             f"dropped {pairs['renumbered_pairs']} pairs in {len(pairs['renumbered_chapters'])} chapters numbered "
             f"differently by the two modules: {', '.join(pairs['renumbered_chapters'])}",
             f"held out {len(held_chapters)} chapters ({len(test_idx)} verses; hash of book+chapter, "
             f"~{fraction:.0%}, seed {seed}); test: the {len(by_query)} distinct {source} verses of those chapters "
             f"as queries over their {len(corpus)} distinct {target} verses",
             f"dropped {len(leak)} training pairs whose text also occurs in a held-out chapter"]
    return TextData(name=name, train=train, test=test, classes=list(pairs["books"]), notes=notes)


@register_text_dataset("verses-en-es", aliases=("verses",), description="English->Spanish verse pairs (SWORD)")
def _load_en_es(path, *, root):
    return load_verses(root=root, source="en")


@register_text_dataset("verses-es-en", description="Spanish->English verse pairs (SWORD)")
def _load_es_en(path, *, root):
    return load_verses(root=root, source="es")
