"""Hard-negative mining from a first-stage model (BM25 or an embedder), leaving out likely false negatives.

For every training anchor, the training documents are ranked by the first-stage model; the top candidates that are
not the anchor's own positive become its hard negatives, except likely false negatives: a document with the same
text as one of the anchor's positives, or one that scores at least `margin` times the positive's own score (a
relative margin: a candidate the first stage rates as highly as the true answer is probably another answer).
Negatives the data already has (shown-but-not-clicked) are kept first.

>>> from contrastlab.data.text import PairData
>>> pairs = PairData(["red apple", "green pear", "yellow banana"], ["apple fruit red", "pear fruit green",
...                  "banana fruit yellow"])
>>> mined, stats = mine_hard_negatives(pairs, count=1)
>>> mined.negatives[0], stats["mined"]
(['pear fruit green'], 3)
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..data.text import PairData, RetrievalData
from ..progress import bar as progress_bar

__all__ = ["mine_hard_negatives"]


def _first_stage_scores(by, queries: list[str], corpus: list[str], chunk: int):
    """Yield (start, scores (c, N) float64) per chunk of queries."""
    if by == "bm25":
        from ..eval.text_baselines import _BM25
        index = _BM25(RetrievalData(queries=queries, corpus=corpus, relevant=[[0]] * len(queries)), k1=1.5, b=0.75)
        for i in range(0, len(queries), chunk):
            yield i, index.scores(i, min(len(queries), i + chunk))
        return
    docs = torch.from_numpy(by.encode(corpus)).double()                                     # (N, D)
    for i in range(0, len(queries), chunk):
        q = torch.from_numpy(by.encode(queries[i:i + chunk])).double()                      # (c, D)
        yield i, (q @ docs.T).numpy()


def mine_hard_negatives(pairs: PairData, *, by="bm25", count: int = 3, candidates: int = 30, margin: float = 0.95,
                        show_progress: bool = False) -> tuple[PairData, dict]:
    """Return a copy of `pairs` whose `negatives` hold up to `count` mined hard negatives per pair (after any
    negatives it already had), and counts of what was mined and what was left out as a likely false negative.

    Args:
        by: "bm25", or an embedder (`.encode(list[str]) -> (N, D)` unit rows, e.g.
            `contrastlab.runs.load_run(RUN).embedder()`).
        count: hard negatives per pair, >= 1.
        candidates: how deep in the first-stage ranking to look, >= count.
        margin: a candidate scoring >= margin x the positive's score is a likely false negative; in (0, 1].
    """
    if not isinstance(pairs, PairData):
        raise TypeError(f"`pairs` must be a PairData, got {type(pairs).__name__}")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"`count` must be a positive int, got {count!r}")
    if not isinstance(candidates, int) or isinstance(candidates, bool) or candidates < count:
        raise ValueError(f"`candidates` must be an int >= count ({count}), got {candidates!r}")
    if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not 0 < margin <= 1:
        raise ValueError(f"`margin` must be in (0, 1], got {margin!r}")
    if by != "bm25" and not hasattr(by, "encode"):
        raise ValueError(f"`by` must be 'bm25' or an embedder with .encode(texts), got {by!r}")
    corpus = list(dict.fromkeys(pairs.positives))                                          # distinct documents
    where = {t: j for j, t in enumerate(corpus)}
    anchors = list(dict.fromkeys(pairs.anchors))
    own: dict[str, set[int]] = {}                                                          # anchor -> its positives
    for a, p in zip(pairs.anchors, pairs.positives):
        own.setdefault(a, set()).add(where[p])
    found: dict[str, list[str]] = {}
    stats = {"mined": 0, "false_negatives_left_out": 0, "anchors": len(anchors), "documents": len(corpus),
             "by": "bm25" if by == "bm25" else getattr(by, "source", type(by).__name__)}
    chunk = max(1, 2_000_000 // max(1, len(corpus)))
    bar = progress_bar(total=len(anchors), disable=not show_progress, desc="mining hard negatives", unit="query")
    for start, scores in _first_stage_scores(by, anchors, corpus, chunk):
        depth = min(candidates + 1, len(corpus))
        top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth] if depth < len(corpus) else \
            np.tile(np.arange(len(corpus)), (len(scores), 1))
        for r, row in enumerate(top):
            a = anchors[start + r]
            mine = own[a]
            ceiling = margin * max(float(scores[r, j]) for j in mine)
            order = row[np.argsort(-scores[r, row], kind="stable")]
            picked = []
            for j in order.tolist():
                if j in mine:
                    continue
                if float(scores[r, j]) >= ceiling and ceiling > 0:
                    stats["false_negatives_left_out"] += 1
                    continue
                picked.append(corpus[j])
                if len(picked) == count:
                    break
            found[a] = picked
            stats["mined"] += len(picked)
        bar.update(len(scores))
    bar.close()
    old = pairs.negatives or [[] for _ in range(len(pairs))]
    negatives = [list(dict.fromkeys(list(o) + [t for t in found[a] if t != p]))
                 for o, a, p in zip(old, pairs.anchors, pairs.positives)]
    return dataclasses.replace(pairs, negatives=negatives), stats
