"""The baselines every search claim is measured against: BM25, TF-IDF, a frozen static embedding (wordllama),
and most-popular items for recommendation. Each returns ranked document indices (Q, k) that
`retrieval_metrics` scores, and `text_baselines` runs the named ones on a `RetrievalData`.

>>> from contrastlab.data.text import RetrievalData
>>> data = RetrievalData(queries=["purring cat"], corpus=["a loud dog", "the cat sat", "cats purr"],
...                      relevant=[[2]])
>>> bm25_rank(data, k=2).tolist()
[[1, 0]]
>>> popularity_rank([5, 9, 1, 9], k=3, exclude=[[1], []]).tolist()
[[3, 0, 2], [1, 3, 0]]
"""
from __future__ import annotations

import numbers
import re
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..data.text import RetrievalData
from ..models.text.base import TextEncoder, encode_texts
from ..losses import validation as lcheck
from . import _checks as check
from .retrieval import _CHUNK_ELEMENTS, _in_sorted, _ks, rank, retrieval_metrics, top_k

__all__ = ["word_tokens", "bm25_scores", "bm25_rank", "tfidf_rank", "frozen_embedding_rank", "popularity_rank",
           "TEXT_BASELINES", "text_baselines"]

_WORD = re.compile(r"\w+")


def word_tokens(text: str) -> list[str]:
    """Lower-cased runs of Unicode word characters: no stemming, no stop words, one-letter words kept, so the
    same rule serves English, Spanish or any space-separated language.

    >>> word_tokens("Él dijo: ¡Hola, Mundo 2!")
    ['él', 'dijo', 'hola', 'mundo', '2']
    """
    return _WORD.findall(text.lower())


def _retrieval_data(data) -> RetrievalData:
    if not isinstance(data, RetrievalData):
        raise TypeError(f"`data` must be a contrastlab.data.text.RetrievalData, got {type(data).__name__}")
    return data


class _BM25:
    """A bm25s index over `corpus` (lucene scoring, float64) and the word ids of each query."""

    def __init__(self, data: RetrievalData, *, k1: float, b: float):
        import bm25s

        k1 = lcheck.positive_number("k1", k1, allow_zero=True)
        if not isinstance(b, numbers.Real) or isinstance(b, bool) or not 0.0 <= b <= 1.0:
            raise ValueError(f"`b` must be a number in [0, 1], got {b!r}")
        self.index = bm25s.BM25(k1=k1, b=float(b), method="lucene", dtype="float64")
        self.index.index([word_tokens(t) for t in data.corpus], show_progress=False)
        self.queries = [self.index.get_tokens_ids(word_tokens(t)) for t in data.queries]

    def scores(self, start: int, stop: int) -> np.ndarray:
        """Shape: -> (stop - start, N) float64."""
        return np.stack([self.index.get_scores_from_ids(ids) for ids in self.queries[start:stop]])


def bm25_scores(data: RetrievalData, *, k1: float = 1.5, b: float = 0.75) -> np.ndarray:
    """The full BM25 score matrix of `bm25_rank` (for small sets and inspection; `bm25_rank` never builds it).

    Shape: Q queries, N documents -> (Q, N) float64.
    """
    data = _retrieval_data(data)
    return _BM25(data, k1=k1, b=b).scores(0, len(data.queries))


def bm25_rank(data: RetrievalData, *, k: int, k1: float = 1.5, b: float = 0.75) -> torch.Tensor:
    """Rank `data.corpus` for every query by BM25 (Robertson et al. 1994), computed by the `bm25s` package.

    Scoring is bm25s' default ``method="lucene"``: a query word w present in document d adds
    ``idf(w) * tf / (tf + k1 * (1 - b + b * |d| / avgdl))`` with ``idf(w) = ln(1 + (N - df + 0.5) / (df + 0.5))``;
    a word repeated in the query counts each time. Text is split by `word_tokens` (lower case, no stemming or
    stop words) rather than bm25s' English default, so it works on any language. Scores are float64 and ties go
    to the lower document index, so the ranking is deterministic; queries sharing no word with the corpus get
    documents 0..k-1.

    Shape: Q queries, N documents -> (Q, k) int64 (-1 past N).
    """
    data = _retrieval_data(data)
    k = check.positive_int("k", k)
    index = _BM25(data, k1=k1, b=b)
    q, n = len(data.queries), len(data.corpus)
    step = max(1, _CHUNK_ELEMENTS // n)
    return torch.cat([top_k(torch.from_numpy(index.scores(i, min(q, i + step))), k=k)   # (c, N) -> (c, k)
                      for i in range(0, q, step)])


def tfidf_rank(data: RetrievalData, *, k: int, analyzer: str = "char_wb",
               ngram_range: tuple[int, int] = (3, 5)) -> torch.Tensor:
    """Rank `data.corpus` for every query by cosine similarity of TF-IDF vectors (scikit-learn's TfidfVectorizer).

    The default is character 3- to 5-grams inside word boundaries (``analyzer="char_wb"``): it matches
    inflections and shared word pieces ("economics" / "economic", "Jerusalem" / "Jerusalén") that BM25's whole
    words miss, which makes it the complementary lexical baseline; ``analyzer="word", ngram_range=(1, 2)`` gives
    word unigrams + bigrams. Term frequency is sublinear (1 + ln tf), idf is smoothed and fitted on the corpus
    only, rows are L2-normalised (Sparck Jones 1972, "A statistical interpretation of term specificity"); the
    sparse products go in query chunks and ties go to the lower index.

    >>> data = RetrievalData(queries=["economic growth"], corpus=["a growing dog", "economics"], relevant=[[1]])
    >>> tfidf_rank(data, k=2).tolist(), bm25_rank(data, k=2).tolist()     # BM25 sees no shared word
    ([[1, 0]], [[0, 1]])

    Shape: Q queries, N documents -> (Q, k) int64 (-1 past N).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    data = _retrieval_data(data)
    k = check.positive_int("k", k)
    if analyzer not in ("word", "char", "char_wb"):
        raise ValueError(f"`analyzer` must be 'word', 'char' or 'char_wb', got {analyzer!r}")
    if (not isinstance(ngram_range, (tuple, list)) or len(ngram_range) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in ngram_range)
            or not 1 <= ngram_range[0] <= ngram_range[1]):
        raise ValueError(f"`ngram_range` must be a pair of ints 1 <= lo <= hi, got {ngram_range!r}")
    vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=tuple(ngram_range), sublinear_tf=True,
                                 lowercase=True, dtype=np.float64)
    try:
        docs = vectorizer.fit_transform(data.corpus)                          # (N, F) sparse, unit rows
    except ValueError as e:                                                   # empty vocabulary
        raise ValueError(f"`data.corpus` has no {analyzer} {ngram_range}-grams to index ({e})") from None
    queries = vectorizer.transform(data.queries)                              # (Q, F) sparse
    docs_t = docs.T.tocsr()                                                   # (F, N)
    n = len(data.corpus)
    step = max(1, _CHUNK_ELEMENTS // n)
    out = [top_k(torch.from_numpy((queries[i:i + step] @ docs_t).toarray()), k=k)   # (c, N) -> (c, k)
           for i in range(0, queries.shape[0], step)]
    return torch.cat(out)


def frozen_embedding_rank(encoder: TextEncoder, data: RetrievalData, *, k: int,
                          batch_size: int = 256) -> torch.Tensor:
    """Rank `data.corpus` for every query by cosine similarity of `encoder`'s embeddings (any TextEncoder,
    e.g. `WordLlamaEncoder()`), through `encode_texts` and `rank`.

    Shape: Q queries, N documents -> (Q, k) int64 (-1 past N).
    """
    if not isinstance(encoder, TextEncoder):
        raise TypeError(f"`encoder` must be a contrastlab TextEncoder, got {type(encoder).__name__}")
    data = _retrieval_data(data)
    docs = encode_texts(encoder, list(data.corpus), batch_size=batch_size)      # (N, D) unit rows
    queries = encode_texts(encoder, list(data.queries), batch_size=batch_size)  # (Q, D)
    return rank(queries, docs, k=k)


def popularity_rank(item_counts, *, k: int, exclude: Sequence[Sequence[int]] | None = None) -> torch.Tensor:
    """The most popular items for every user: items by descending count, ties to the lower item id.

    With ``exclude`` (one list of item ids per user, e.g. the user's history) each user's list skips their own
    items and the result has one row per user; without it there is a single row, which broadcasts over users
    (``.expand(U, -1)``). Places that cannot be filled (k larger than the items left) are -1.

    Shape: item_counts (I,) -> (U, k) or (1, k) int64.
    """
    counts = torch.as_tensor(np.asarray(item_counts), dtype=torch.float64) \
        if not torch.is_tensor(item_counts) else item_counts.detach().cpu().double()
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError(f"`item_counts` must be a non-empty 1-d array of counts (I,), got shape {tuple(counts.shape)}")
    if not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()):
        raise ValueError(f"`item_counts` must be finite and >= 0, got min {float(counts.min())}")
    k = check.positive_int("k", k)
    n_items = counts.numel()
    order = top_k(counts.unsqueeze(0), k=max(k, n_items))[0]                  # (max(k, I),) best first, -1 padded
    if exclude is None:
        return order[:k].unsqueeze(0)
    if isinstance(exclude, (str, bytes)) or not isinstance(exclude, Sequence):
        raise TypeError(f"`exclude` must be a list with one list of item ids per user, got {type(exclude).__name__}")
    seen = [np.asarray(items).reshape(-1) for items in exclude]
    for u, arr in enumerate(seen):
        if arr.size and arr.dtype.kind not in "iu":
            raise TypeError(f"`exclude[{u}]` must hold int item ids, got dtype {arr.dtype}")
    seen = [arr.astype(np.int64) for arr in seen]
    lengths = np.array([s.size for s in seen], dtype=np.int64)                 # (U,)
    users = np.repeat(np.arange(len(seen)), lengths)                          # (P,) user of each excluded item
    items = np.concatenate(seen) if seen else np.zeros(0, dtype=np.int64)     # (P,)
    bad = np.flatnonzero((items < 0) | (items >= n_items))
    if bad.size:
        raise ValueError(f"`exclude[{users[bad[0]]}]` must hold item ids in [0, {n_items}), got {items[bad[0]]}")
    excluded = torch.unique(torch.from_numpy(users * n_items + items))       # (P,) sorted keys user * I + item
    out = torch.full((len(seen), k), -1, dtype=torch.long)
    width = int(min(order.numel(), k + lengths.max(initial=0)))              # enough items to fill k after skipping
    cand = order[:width]                                                      # (W,)
    step = max(1, _CHUNK_ELEMENTS // width)
    for u0 in range(0, len(seen), step):
        u1 = min(len(seen), u0 + step)
        keys = torch.arange(u0, u1).unsqueeze(1) * n_items + cand             # (u, W) keys user * I + item
        keep = (cand >= 0) & ~_in_sorted(keys, excluded) if excluded.numel() else (cand >= 0).expand_as(keys)
        place = keep.cumsum(1)                                                # (u, W) 1-based place in the list
        rows, cols = (keep & (place <= k)).nonzero(as_tuple=True)
        out[u0 + rows, place[rows, cols] - 1] = cand[cols]
    return out


def _wordllama_rank(data: RetrievalData, k: int) -> torch.Tensor:
    from ..models.text.external import WordLlamaEncoder

    return frozen_embedding_rank(WordLlamaEncoder(), data, k=k)


TEXT_BASELINES: dict[str, Callable[[RetrievalData, int], torch.Tensor]] = {
    "bm25": lambda data, k: bm25_rank(data, k=k),
    "tfidf": lambda data, k: tfidf_rank(data, k=k),
    "wordllama": _wordllama_rank,
}


def text_baselines(data: RetrievalData, *, k: int = 100, which: Sequence[str] = ("bm25", "tfidf", "wordllama"),
                   ks=(1, 10, 100), cutoff: int = 10) -> dict[str, dict[str, float]]:
    """`retrieval_metrics` of each named baseline (keys of `TEXT_BASELINES`) on `data`, plus its ``seconds``.

    >>> from contrastlab.data.text import RetrievalData
    >>> data = RetrievalData(queries=["red apple"], corpus=["green pear", "red apple pie"], relevant=[[1]])
    >>> text_baselines(data, k=2, which=("bm25",), ks=(1,), cutoff=2)["bm25"]["recall@1"]
    1.0
    """
    data = _retrieval_data(data)
    k = check.positive_int("k", k)
    ks = _ks(ks)
    cutoff = check.positive_int("cutoff", cutoff)
    if k < max(ks[-1], cutoff):
        raise ValueError(f"`k` must be >= max(ks, cutoff) = {max(ks[-1], cutoff)}, got {k}")
    names = [which] if isinstance(which, str) else list(which)
    unknown = [w for w in names if w not in TEXT_BASELINES]
    if unknown or not names:
        raise ValueError(f"`which` must name baselines from {sorted(TEXT_BASELINES)}, got {which!r}")
    out = {}
    for name in names:
        start = time.perf_counter()
        ranked = TEXT_BASELINES[name](data, k)                                # (Q, k)
        metrics = retrieval_metrics(ranked, data.relevant, ks=ks, cutoff=cutoff, num_docs=len(data.corpus))
        out[name] = {**metrics, "seconds": time.perf_counter() - start}
    return out
