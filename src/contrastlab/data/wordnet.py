"""WordNet 3.0 (Miller 1995, "WordNet: a lexical database for English") as two text datasets.

``"wordnet"`` is a reverse dictionary: the query is a synset's definition, the document its words joined with
", " plus its usage examples; labels are the 45 supersenses (lexicographer files, e.g. ``noun.animal``). The test
set is 2,000 definitions sampled (fixed seed) from ~5% held-out synsets, searched against the documents of ALL
117,659 synsets (real distractors). The split hashes the definition text, so synsets sharing a definition land on
the same side: no test definition is ever a training anchor.

``"wordnet-synonyms"`` pairs words of one synset (at most ``max_pairs_per_synset`` per synset), split by synset;
its test set is word -> synonyms retrieval over the whole vocabulary.

The four ``data.*`` files come from Debian ``wordnet-base`` (/usr/share/wordnet); they are parsed once and cached.

Example::

    >>> line = ("02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 000 | a member of the genus Canis; "
    ...         '"the dog barked all night"')
    >>> s = parse_data_line(line, pos="n")
    >>> s.words, LEXNAMES[s.lexname]
    (('dog', 'domestic dog', 'Canis familiaris'), 'noun.animal')
    >>> s.definition, s.examples
    ('a member of the genus Canis', ('the dog barked all night',))
    >>> document(s)
    'dog, domestic dog, Canis familiaris; the dog barked all night'
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .cache import cache_dir
from .text import PairData, TextData, cached_json, hash_unit, retrieval_set
from .text_registry import register_text_dataset

__all__ = ["LEXNAMES", "POS_FILES", "APT_HINT", "Synset", "parse_data_line", "document", "find_wordnet",
           "read_synsets", "load_wordnet", "load_wordnet_synonyms"]

#: The 45 lexicographer files of WordNet 3.0 by number (the ``lexnames`` file of the distribution).
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
    "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
    "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant",
    "noun.possession", "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition", "verb.communication",
    "verb.competition", "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl")
POS_FILES = {"n": "data.noun", "v": "data.verb", "a": "data.adj", "r": "data.adv"}
APT_HINT = "apt-get install wordnet-base"
SYSTEM_DIR = Path("/usr/share/wordnet")
TEST_FRACTION = 0.05
TEST_QUERIES = 2000
_PARSER_VERSION = 2
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")
_LAST: list = [None, ()]         # (cache path, key digest) and the synsets last read: one entry, not a growing cache
_SEP = "\x1f"                   # joins words / examples in the cache (never in WordNet text)


class Synset(NamedTuple):
    id: str                     # file letter + byte offset, e.g. "n02084071"
    lexname: int                # index into LEXNAMES
    words: tuple[str, ...]
    definition: str
    examples: tuple[str, ...]


def parse_data_line(line: str, *, pos: str) -> Synset:
    """One synset line of a ``data.*`` file: offset, lexfile number, type, word count (hex), words, ..., | gloss."""
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    offset, lexfile, count = fields[0], int(fields[1]), int(fields[3], 16)
    words = tuple(dict.fromkeys(_ADJ_MARKER.sub("", w).replace("_", " ") for w in fields[4:4 + 2 * count:2]))
    gloss = gloss.strip()
    cut = gloss.find('; "')
    definition = (gloss if cut < 0 else gloss[:cut]).strip().rstrip(";").strip()
    examples = tuple(e.strip() for e in re.findall(r'"([^"]+)"', gloss[cut:]) if e.strip()) if cut >= 0 else ()
    return Synset(f"{pos}{offset}", lexfile, words, definition, examples)


def document(s: Synset) -> str:
    """The text a definition query should find: the synset's words, then its examples."""
    return "; ".join([", ".join(s.words), *s.examples])


def find_wordnet(root: str | None = None) -> Path:
    """The first folder (`root`, ``$CONTRASTLAB_DATA/wordnet``, /usr/share/wordnet) holding the four data files."""
    env = os.environ.get("CONTRASTLAB_DATA")
    candidates = [Path(root)] if root is not None else []
    candidates += ([Path(env, "wordnet")] if env else []) + [SYSTEM_DIR]
    for folder in candidates:
        if all((folder / f).is_file() for f in POS_FILES.values()):
            return folder
    raise FileNotFoundError(f"WordNet 3.0 data files ({', '.join(POS_FILES.values())}) not found in "
                            f"{', '.join(map(str, candidates))}; install them with `{APT_HINT}`")


def read_synsets(root: str | None = None) -> list[Synset]:
    """Every synset of the four data files (noun, verb, adj, adv order), parsed once and cached as JSON."""
    folder = find_wordnet(root)
    key = {"parser": _PARSER_VERSION, "files": [[str(folder / f), (folder / f).stat().st_size,
                                                 int((folder / f).stat().st_mtime)] for f in POS_FILES.values()]}

    def build():
        rows = []
        for pos, name in POS_FILES.items():
            with open(folder / name, encoding="utf-8", errors="replace") as f:
                for n, line in enumerate(f, 1):
                    if line.startswith("  ") or not line.strip():        # the license header
                        continue
                    try:
                        s = parse_data_line(line, pos=pos)
                    except (ValueError, IndexError) as e:
                        raise ValueError(f"{folder / name} line {n}: not a WordNet synset line ({e})") from None
                    rows.append(s)
        return {"id": [s.id for s in rows], "lexname": [s.lexname for s in rows],
                "words": [_SEP.join(s.words) for s in rows], "definition": [s.definition for s in rows],
                "examples": [_SEP.join(s.examples) for s in rows]}

    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).hexdigest()
    path = cache_dir("wordnet", f"synsets-{digest}.json")
    if _LAST[0] == (path, digest):                         # the same files read again in this process
        return list(_LAST[1])
    cols, _ = cached_json(path, key=key, build=build)
    split = lambda t: tuple(t.split(_SEP)) if t else ()                    # noqa: E731
    synsets = [Synset(i, lex, split(w), d, split(e)) for i, lex, w, d, e in
               zip(cols["id"], cols["lexname"], cols["words"], cols["definition"], cols["examples"])]
    _LAST[:] = [(path, digest), tuple(synsets)]
    return synsets


def _check(seed, fraction, test_queries):
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, got {seed!r}")
    if not 0 < fraction < 1:
        raise ValueError(f"`fraction` must be in (0, 1), got {fraction!r}")
    if not isinstance(test_queries, int) or isinstance(test_queries, bool) or test_queries < 1:
        raise ValueError(f"`test_queries` must be a positive int, got {test_queries!r}")


def load_wordnet(*, root: str | None = None, seed: int = 0, fraction: float = TEST_FRACTION,
                 test_queries: int = TEST_QUERIES) -> TextData:
    """Reverse dictionary: definition -> the synset's words and examples; labels are the 45 supersenses."""
    _check(seed, fraction, test_queries)
    synsets = read_synsets(root)
    docs = [document(s) for s in synsets]
    usable = [i for i, s in enumerate(synsets) if s.definition]
    held_defs = {d for d in dict.fromkeys(synsets[i].definition for i in usable) if hash_unit(d, seed=seed) < fraction}
    by_def: dict[str, list[int]] = {}
    for i in usable:
        if synsets[i].definition in held_defs:
            by_def.setdefault(synsets[i].definition, []).append(i)
    held_list = list(by_def)
    order = np.random.default_rng(seed).permutation(len(held_list))[:test_queries]
    picked = sorted((held_list[k] for k in order), key=lambda d: by_def[d][0])
    relevant_docs = {docs[i] for d in picked for i in by_def[d]}
    test = retrieval_set(picked, [[docs[i] for i in by_def[d]] for d in picked], corpus=docs,
                         doc_ids=[s.id for s in synsets],
                         query_labels=[synsets[by_def[d][0]].lexname for d in picked])
    train_idx = [i for i in usable if synsets[i].definition not in held_defs]
    leak = [i for i in train_idx if docs[i] in relevant_docs]
    train_idx = [i for i in train_idx if docs[i] not in relevant_docs]
    train = PairData(anchors=[synsets[i].definition for i in train_idx], positives=[docs[i] for i in train_idx],
                     positive_ids=[synsets[i].id for i in train_idx],
                     labels=np.array([synsets[i].lexname for i in train_idx], dtype=np.int64))
    held_synsets = sum(len(v) for v in by_def.values())
    notes = [f"WordNet 3.0: {len(synsets)} synsets ({len(synsets) - len(usable)} without a definition unused)",
             f"held out {held_synsets} synsets ({len(held_defs)} distinct definitions; hash of the definition "
             f"text, ~{fraction:.0%}, seed {seed}): synsets sharing a definition are on one side",
             f"test: {len(picked)} held-out definitions (sampled with seed {seed}) over the documents of all "
             f"{len(docs)} synsets; relevant = the synset's document and every identical one",
             f"dropped {len(leak)} training pairs whose document text is relevant to a test query"]
    return TextData(name="wordnet", train=train, test=test, classes=list(LEXNAMES), notes=notes)


def load_wordnet_synonyms(*, root: str | None = None, seed: int = 0, fraction: float = TEST_FRACTION,
                          test_queries: int = TEST_QUERIES, max_pairs_per_synset: int = 10) -> TextData:
    """Synonym pairs (words of one synset), split by synset; test: word -> its held-out synonyms."""
    _check(seed, fraction, test_queries)
    if not isinstance(max_pairs_per_synset, int) or isinstance(max_pairs_per_synset, bool) or \
            max_pairs_per_synset < 1:
        raise ValueError(f"`max_pairs_per_synset` must be a positive int, got {max_pairs_per_synset!r}")
    every = read_synsets(root)
    synsets = [s for s in every if len(s.words) >= 2]
    held = [hash_unit(s.id, seed=seed) < fraction for s in synsets]
    anchors, positives, labels = [], [], []
    for s, h in zip(synsets, held):
        if not h:
            for a, b in itertools.islice(itertools.combinations(s.words, 2), max_pairs_per_synset):
                anchors.append(a), positives.append(b), labels.append(s.lexname)
    seen = set(anchors) | set(positives)
    synonyms: dict[str, set[str]] = {}
    label_of: dict[str, int] = {}
    for s, h in zip(synsets, held):
        if h:
            for w in s.words:
                if w not in seen:
                    synonyms.setdefault(w, set()).update(x for x in s.words if x != w)
                    label_of.setdefault(w, s.lexname)
    candidates = list(synonyms)
    picked = [candidates[k] for k in sorted(np.random.default_rng(seed).permutation(len(candidates))[:test_queries])]
    vocabulary = sorted({w for s in every for w in s.words})
    test = retrieval_set(picked, [sorted(synonyms[w]) for w in picked], corpus=vocabulary,
                         query_labels=[label_of[w] for w in picked])
    train = PairData(anchors=anchors, positives=positives, positive_ids=list(positives),
                     labels=np.array(labels, dtype=np.int64))
    notes = [f"WordNet 3.0: {len(synsets)} synsets with >= 2 words; at most {max_pairs_per_synset} word pairs each",
             f"held out {sum(held)} synsets (hash of the synset id, ~{fraction:.0%}, seed {seed})",
             f"test: {len(picked)} words of held-out synsets that occur in no training pair (of {len(candidates)}), "
             f"over the vocabulary of {len(vocabulary)} words; relevant = their held-out synonyms (which may occur in "
             f"training pairs of their other senses)"]
    return TextData(name="wordnet-synonyms", train=train, test=test, classes=list(LEXNAMES), notes=notes)


@register_text_dataset("wordnet", description="WordNet reverse dictionary: definition -> words and examples")
def _load_wordnet(path, *, root):
    return load_wordnet(root=root)


@register_text_dataset("wordnet-synonyms", description="WordNet synonym pairs; test: word -> synonyms")
def _load_synonyms(path, *, root):
    return load_wordnet_synonyms(root=root)
