"""Build a search index from Python: `index_run` embeds what a run (or a model spec) can embed into named
collections -- a corpus as "texts" (`corpus=`), images as "images" with thumbnails (`images=`), and an image-text
run's own images and names when neither is given -- and saves one `SearchIndex` folder. `contrastlab index` calls
it; errors are raised with messages that name the setting (as its command-line option) and the value got.

Every kind of run goes through the same steps: embed each collection in batches with a progress bar
(`embed_in_batches`), build each collection's vector index (exact up to 50k vectors, HNSW past it; an approximate
one measures its recall on the queries it will get: the other collection's vectors, or the `queries` file), then
write the folder atomically.

>>> import json, tempfile
>>> from pathlib import Path
>>> class Letters:                                   # a tiny embedder: counts of a, b, c
...     dim = 3
...     def encode(self, texts, *, batch_size=256):
...         return np.array([[t.count(c) + 0.1 for c in "abc"] for t in texts], dtype=np.float32)
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "docs.jsonl").write_text("".join(json.dumps({"id": i, "text": t}) + "\\n"
...                                                for i, t in [("1", "aaa"), ("2", "bbb"), ("3", "ccc")]))
>>> index = index_run("letters", corpus=folder / "docs.jsonl", out=folder / "idx", embedder=Letters(),
...                   progress=False)
>>> index, index.collection("texts").search(Letters().encode(["bb"]), 1)[1]
(SearchIndex(texts=3, dim=3, queries=('text',)), [['2']])
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from .collections import Collection, SearchIndex, Thumbnails

__all__ = ["load_run_embedder", "embed_in_batches", "embed_texts", "embedder_source", "embedder_queries",
           "build_index", "index_run", "BACKENDS"]


def load_run_embedder(source):
    """The embedder of a run directory or a model spec (`contrastlab.search.embedders.load_embedder`)."""
    from . import embedders
    return embedders.load_embedder(str(source))


def embed_in_batches(fn, items, dim: int, *, batch_size: int = 256, desc: str = "embedding", unit: str = "doc",
                     progress: bool = True, each: Callable | None = None) -> np.ndarray:
    """`fn(items[i:i + batch_size])` -> (b, dim) over all `items` (a list, an array or a streamed image source,
    read one batch at a time) with a progress bar; `each(batch)` also sees every batch (thumbnails are made
    there). Shape: (N, ...) -> (N, dim) float32.

    >>> embed_in_batches(lambda b: np.ones((len(b), 2)), ["a", "b", "c"], 2, batch_size=2, progress=False).shape
    (3, 2)
    """
    from tqdm.auto import tqdm
    n = len(items)
    out = np.empty((n, dim), dtype=np.float32)                                          # (N, D)
    with tqdm(total=n, unit=unit, desc=desc, disable=not progress) as bar:
        for i in range(0, n, batch_size):
            batch = items[i:i + batch_size]
            chunk = np.asarray(fn(batch), dtype=np.float32)
            if chunk.shape != (len(batch), dim):
                raise ValueError(f"the embedder returned shape {chunk.shape} for {len(batch)} {unit}s, expected "
                                 f"({len(batch)}, {dim})")
            out[i:i + len(chunk)] = chunk
            if each is not None:
                each(batch)
            bar.update(len(chunk))
    return out


def embed_texts(embedder, texts: list[str], *, batch_size: int = 256, progress: bool = True) -> np.ndarray:
    """Embed `texts` with `embedder.encode` in batches. Shape: (N,) -> (N, embedder.dim) float32."""
    return embed_in_batches(lambda b: embedder.encode(list(b), batch_size=batch_size), texts, embedder.dim,
                            batch_size=batch_size, progress=progress)


def embedder_source(run, embedder) -> str:
    """What `load_embedder` needs to load this embedder again: its own `source`, else the run's absolute path
    (or the spec as given, e.g. "wordllama").

    >>> embedder_source("wordllama", object())
    'wordllama'
    """
    source = getattr(embedder, "source", None)
    if isinstance(source, str) and source:
        return source
    return str(Path(run).resolve()) if Path(run).exists() else str(run)


def embedder_queries(embedder) -> tuple[str, ...]:
    """The query modalities an embedder takes: "text" (it has `encode`), "image" (`encode_images`)."""
    return tuple(m for m, call in (("text", "encode"), ("image", "encode_images")) if hasattr(embedder, call))


# -------------------------------------------------------------------------------------------- what is embedded
class _Part:
    """One collection before its vector index is built: its rows' vectors, ids and texts, and thumbnails."""

    def __init__(self, name, modality, vectors, ids, texts, *, text_field="text", thumbnails=None):
        self.name, self.modality, self.vectors, self.ids, self.texts = name, modality, vectors, ids, texts
        self.text_field, self.thumbnails = text_field, thumbnails


def _image_part(embedder, images, ids, texts, *, text_field, batch_size, progress) -> _Part:
    """Images (N, C, H, W) uint8 (an array, a tensor or a streamed source) embedded with `encode_images`, with a
    PNG thumbnail each (at most MAX_THUMBNAIL_SIZE a side)."""
    from .multimodal import encode_png, thumbnails_of
    shape = tuple(int(s) for s in images.shape)
    want = tuple(getattr(embedder, "image_shape", shape[1:]))
    if len(shape) != 4 or shape[1:] != want:
        raise ValueError(f"`images` must be (N, {', '.join(map(str, want))}) (the run's image shape), got {shape}")
    if shape[0] == 0:
        raise ValueError("`images` must hold at least one image, got none")
    if len(ids) != shape[0] or (texts is not None and len(texts) != shape[0]):
        raise ValueError(f"`ids` and the texts must have one entry per image ({shape[0]}), got {len(ids)} and "
                         f"{len(texts) if texts is not None else None}")
    pngs: list[bytes] = []

    def keep(batch):
        pngs.extend(encode_png(t) for t in thumbnails_of(np.asarray(batch)))
    vectors = embed_in_batches(lambda b: embedder.encode_images(np.ascontiguousarray(np.asarray(b)),
                                                                batch_size=batch_size),
                               images, embedder.dim, batch_size=batch_size, desc="images", unit="image",
                               progress=progress, each=keep)
    return _Part("images", "image", vectors, list(ids), texts, text_field=text_field,
                 thumbnails=Thumbnails.from_pngs(pngs))


def _run_images(images: str, embedder, split: str):
    """The images of the spec `images` at the run's image shape: (stack, ids, class names or None, name)."""
    from ..data import load_images
    c, h, w = embedder.image_shape
    data = load_images(images)
    if data.image_size != (h, w):
        if h != w:
            raise ValueError(f"--images {images}: its images are {data.image_size[1]}x{data.image_size[0]} but the "
                             f"run takes {w}x{h} (not square: resize them to that size first)")
        data = load_images(images, image_size=h)
    if data.channels != c:
        raise ValueError(f"--images {images}: its images have {data.channels} channel(s) but the run takes {c} "
                         f"({'grayscale' if c == 1 else 'RGB'})")
    parts = {"train": [(data.x, data.y)], "test": [(data.x_test, data.y_test)] if data.x_test is not None else []}
    parts["all"] = parts["train"] + parts["test"]
    if not parts[split]:
        raise ValueError(f"--split {split}: {data.name} has no {split} images")
    stack = _Concat([x for x, _ in parts[split]])
    labels = None
    if data.y is not None:
        names = data.classes or tuple(str(i) for i in range(int(max(int(y.max()) for _, y in parts[split])) + 1))
        labels = [names[int(v)] for _, y in parts[split] for v in y.tolist()]
    return stack, [str(i) for i in range(len(stack))], labels, data.name


def _own_data(run: Path, split: str, language: str | None):
    """An image-text run's own dataset: (images (N, 3, H, W) uint8, ids, names in `language`, dataset, language)."""
    from ..rundir import RunDir
    from ..train.config import TrainConfig
    from ..train.tasks import load_data
    config = TrainConfig.from_dict(RunDir(run).read_config()["train"])
    data = load_data(config)                                      # the run's dataset, at its image size
    rows = {"all": np.arange(data.images.shape[0]), "train": data.train_indices().numpy(),
            "test": data.test_indices().numpy()}[split]
    if not len(rows):
        raise ValueError(f"--split {split}: {data.name} has no {split} images")
    language = language or ("en" if "en" in data.texts else next(iter(data.texts)))
    if language not in data.texts:
        raise ValueError(f"--language must be one of {', '.join(data.texts)} (the languages of {data.name}), "
                         f"got {language!r}")
    return (data.images[rows].numpy(), [data.ids[i] for i in rows], [data.texts[language][i] for i in rows],
            config.data, language)


def _names_part(embedder, ids, names, *, batch_size, progress) -> _Part:
    """The distinct non-blank names (id: the first image with that name), embedded by the text tower."""
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name is not None and name.strip():
            first.setdefault(name, i)
    if not first:
        raise ValueError("the images have no names in this language: nothing for an image query to find")
    distinct = list(first)
    vectors = embed_in_batches(lambda b: embedder.encode(list(b), batch_size=batch_size), distinct, embedder.dim,
                               batch_size=batch_size, desc="names", unit="name", progress=progress)
    return _Part("names", "text", vectors, [ids[first[s]] for s in distinct], distinct)


# ------------------------------------------------------------------------------------------- building, saving
def _build_faiss(part: _Part, *, kind, tune_queries, source, **_):
    from .index import VectorIndex
    return VectorIndex.build(part.vectors, part.ids, texts=part.texts, kind=kind, embedder=source,
                             tune_queries=tune_queries)


def _build_milvus(part: _Part, *, kind, tune_queries, source, uri, prefix, **_):
    """The collection in Milvus at `uri` as `<prefix>_<name>` (FLAT up to 50k vectors, HNSW past it, or IVF_FLAT:
    `kind` as for FAISS; the recall measured the same way). The token of a server comes from MILVUS_TOKEN."""
    import os
    import re
    from .milvus import MilvusVectors
    name = re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}_{part.name}")
    return MilvusVectors.build(part.vectors, part.ids, texts=part.texts, uri=uri, name=name if name[0].isalpha()
                               else f"c_{name}", token=os.environ.get("MILVUS_TOKEN"), kind=kind, embedder=source,
                               tune_queries=tune_queries)


#: Where a collection's vectors are kept: a FAISS index in the folder (the default), or a vector database.
BACKENDS = {"faiss": _build_faiss, "milvus": _build_milvus}


def _tune_queries(queries, embedder, *, batch_size: int) -> np.ndarray | None:
    """The `queries` file embedded (None without one): what an approximate index measures its recall on."""
    if queries is None:
        return None
    if "text" not in embedder_queries(embedder):
        raise ValueError(f"--queries holds text queries, but this run embeds {' and '.join(embedder_queries(embedder))}"
                         f" only")
    lines = [t.strip() for t in Path(queries).read_text(encoding="utf-8").splitlines() if t.strip()]
    if not lines:
        raise ValueError(f"--queries {queries} holds no queries")
    return embed_texts(embedder, lines, batch_size=batch_size, progress=False)


def _capabilities(run, embedder) -> tuple[str, ...]:
    """What `run` embeds, known before its model is loaded: from `embedder`, else the run directory's config
    (its modality), else a model spec (texts)."""
    if embedder is not None:
        return embedder_queries(embedder)
    from ..rundir import RunDir
    from ..runs import run_modality
    config = RunDir(run).read_config()
    if config is None:
        return ("text",)
    return {"text": ("text",), "image": ("image",), "image_text": ("text", "image")}.get(run_modality(config), ())


def _check_request(run, can, *, corpus, images, split, language) -> str:
    """What to index ("corpus", "images", "corpus+images" or "own"), or a ValueError naming the option."""
    from ..rundir import RunDir
    what = {("text",): "a text run (or model)", ("image",): "an image run",
            ("text", "image"): "an image-text run"}.get(can, "a run that embeds nothing")
    if corpus is not None and "text" not in can:
        raise ValueError(f"--corpus needs a run that embeds texts; {run} is {what}: give --images SPEC")
    if images is not None and "image" not in can:
        raise ValueError(f"--images needs a run with an image encoder; {run} is {what}: give --corpus FILE")
    if corpus is None and images is None:
        if can == ("text", "image") and RunDir(run).exists():
            return "own"
        if can == ("text", "image"):
            raise ValueError(f"--corpus or --images is required unless RUN is an image-text run directory; {run} "
                             f"is not a run directory (no {RunDir(run).config_file.name})")
        raise ValueError(f"--corpus is required: {run} is {what} (an image-text run, e.g. `contrastlab train clip "
                         f"--data emoji`, indexes its own images and names)" if "image" not in can else
                         f"--images SPEC is required: {run} is {what}; give the images to index (folder:PATH, "
                         f"PATH.npz, fashion-mnist, digits, ...)")
    if language is not None:
        raise ValueError("--language chooses the names of an image-text run's own images; it takes no --corpus or "
                         "--images")
    if split is not None and images is None:
        raise ValueError("--split chooses which images are indexed (an image-text run's own, or --images); with "
                         "--corpus alone the whole corpus is indexed")
    return "+".join(w for w, given in (("corpus", corpus), ("images", images)) if given is not None)


def build_index(embedder, *, corpus: tuple[list[str], list[str]] | None = None, images=None,
                ids: list[str] | None = None, texts: list | None = None, text_field: str = "text",
                names: bool = False, kind: str = "auto", queries=None, batch_size: int = 256,
                progress: bool = False, source: str | None = None, meta: dict | None = None,
                backend: str = "faiss", uri: str | None = None, prefix: str = "index") -> SearchIndex:
    """A `SearchIndex` embedded by `embedder` (not saved): `corpus` (ids, texts) -> "texts"; `images` (N, C, H,
    W) uint8 under `ids`, with `texts` (N names or class labels, or None; `text_field` "text" or "label") ->
    "images" with a thumbnail each (at most MAX_THUMBNAIL_SIZE a side); `names=True` -> also "names": the
    distinct non-blank texts (id: the first image with that text), embedded by the text tower. `queries`
    (Q, D): text queries an approximate collection measures its recall on (else the other modality's vectors).
    `backend`, `uri`: where the vectors live (see `index_run`); `prefix`: Milvus collections are named
    `<prefix>_<collection>`.

    >>> class Mean:                                      # a tiny image embedder: brightness, and 1
    ...     dim, image_shape, source = 2, (1, 4, 4), "toy"
    ...     def encode_images(self, x, *, batch_size=256):
    ...         z = np.stack([np.asarray(x, np.float32).mean((1, 2, 3)), np.ones(len(x))], 1)
    ...         return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)
    >>> x = np.stack([np.full((1, 4, 4), v, np.uint8) for v in (0, 10, 200, 210)])   # (N, C, H, W) = (4, 1, 4, 4)
    >>> index = build_index(Mean(), images=x, ids=["a", "b", "c", "d"], texts=["dark"] * 2 + ["light"] * 2,
    ...                     text_field="label")
    >>> index.queries, index.collection("images").search(Mean().encode_images(x[2:3]), 2)[1]
    (('image',), [['c', 'd']])
    """
    if backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "milvus" and not uri:
        raise ValueError("--backend milvus needs --uri: a milvus-lite file (e.g. idx.db) or a server "
                         "(http://host:19530)")
    if corpus is None and images is None:
        raise ValueError("give `corpus` (ids, texts) and/or `images`: there is nothing to index")
    start = time.perf_counter()
    parts = []
    if corpus is not None:
        parts.append(_Part("texts", "text", embed_texts(embedder, list(corpus[1]), batch_size=batch_size,
                                                        progress=progress), list(corpus[0]), list(corpus[1])))
    if images is not None:
        parts.append(_image_part(embedder, images, list(ids or []), None if texts is None else list(texts),
                                 text_field=text_field, batch_size=batch_size, progress=progress))
        if names:
            parts.append(_names_part(embedder, list(ids), list(texts or []), batch_size=batch_size,
                                     progress=progress))
    seconds = time.perf_counter() - start
    source = source if source is not None else getattr(embedder, "source", None)
    build = BACKENDS[backend]
    collections = []
    for part in parts:
        others = [p.vectors for p in parts if p.modality != part.modality]
        # recall is measured on the queries a collection will get: text queries (`queries`) search the images
        # when there are any, else the texts; otherwise the other modality's vectors
        if callable(queries):                                  # embedded after the collections
            queries = queries()
        texts_asked = queries is not None and (part.modality == "image" or not others)
        along = queries if texts_asked else (np.concatenate(others) if others else None)
        vectors = build(part, kind=kind, tune_queries=along, source=source, uri=uri, prefix=prefix)
        collections.append(Collection(part.name, part.modality, vectors, thumbnails=part.thumbnails,
                                      text_field=part.text_field))
    info = {"embedder": source, "run_step": getattr(embedder, "step", None), "embed_seconds": round(seconds, 3),
            "backend": backend}
    thumbs = [p.thumbnails for p in parts if p.thumbnails is not None]
    if thumbs:
        from .multimodal import decode_png
        info["thumbnail_size"] = list(decode_png(thumbs[0][0]).shape[1:])
        info["image_shape"] = [int(v) for v in images.shape[1:]]
    if hasattr(embedder, "fit"):
        info["query_image"] = {"fit": embedder.fit, "resample": getattr(embedder, "resample", None)}
    return SearchIndex(collections, queries=embedder_queries(embedder), meta={**info, **(meta or {})})


def index_run(run, *, out, corpus=None, images: str | None = None, split: str | None = None,
              language: str | None = None, kind: str = "auto", queries=None, batch_size: int = 256,
              progress: bool = True, embedder=None, on_note: Callable[[str], None] | None = None,
              backend: str = "faiss", uri: str | None = None) -> SearchIndex:
    """Embed with `run`'s encoders (a run directory or a model spec; or `embedder`) and save a `SearchIndex` to
    the folder `out` (see `build_index`):

    - `corpus` (JSONL {"id", "text"} per line, or CSV id,text) -> collection "texts";
    - `images` (a `contrastlab.data.load_images` spec: folder:PATH, PATH.npz, fashion-mnist, ...; `split`: all
      (default: train then test), train or test) -> "images" (ids: positions "0", "1", ...; their class names,
      as labels, when the data has them; a thumbnail each). Images of another size are resized to the run's
      (shorter side, centre crop); another channel count is an error;
    - neither, for an image-text run: its own dataset's images (`split`) and their names (`language`, default en,
      else the dataset's first) -> "images" and "names".

    `kind`: see `VectorIndex.build`; `queries`: a file of text queries an approximate collection measures its
    recall on. `backend`: "faiss" (vectors in the folder) or "milvus" (the vectors in the Milvus at `uri`: a
    milvus-lite file or a server URL; the folder keeps where they are, and the thumbnails). `on_note(text)` hears
    what the corpus reader noticed. Returns the index; its `meta` holds the embedder's source and checkpoint
    step, the data, the embedding seconds."""
    if queries is not None and not Path(queries).is_file():
        raise FileNotFoundError(f"--queries {queries} does not exist or is not a file")
    what = _check_request(run, _capabilities(run, embedder), corpus=corpus, images=images, split=split,
                          language=language)
    split = split or "all"
    text_corpus = None
    if "corpus" in what:
        from ..data.pairs import read_corpus
        if not Path(corpus).is_file():
            raise FileNotFoundError(f"--corpus {corpus} does not exist or is not a file")
        doc_ids, docs, notes = read_corpus(corpus)
        for note in notes if on_note is not None else ():
            on_note(note)
        if not doc_ids:
            raise ValueError(f"{corpus} holds no documents")
        text_corpus = (doc_ids, docs)
    if embedder is None:
        embedder = load_run_embedder(run)
    meta: dict = {"corpus": str(corpus)} if corpus is not None else {}
    pixels = ids = texts = None
    field = "text"
    if what == "own":
        pixels, ids, texts, data, language = _own_data(Path(run), split, language)
        meta.update(data=data, split=split, language=language)
    elif "images" in what:
        pixels, ids, texts, name = _run_images(images, embedder, split)
        meta.update(data=images, dataset=name, split=split, has_labels=texts is not None)
        field = "label"
    index = build_index(embedder, corpus=text_corpus, images=pixels, ids=ids, texts=texts, text_field=field,
                        names=what == "own", kind=kind,
                        queries=lambda: _tune_queries(queries, embedder, batch_size=batch_size),
                        batch_size=batch_size, progress=progress, source=embedder_source(run, embedder), meta=meta,
                        backend=backend, uri=uri, prefix=Path(out).name or "index")
    index.save(out)
    return index


class _Concat:
    """Image stacks (tensors or streamed sources) read one after the other by slices. Shape: (N, C, H, W)."""

    def __init__(self, parts):
        self.parts = parts
        self.starts = np.cumsum([0] + [len(p) for p in parts])
        self.shape = (int(self.starts[-1]), *tuple(parts[0].shape[1:]))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        out = []
        for part, first in zip(self.parts, self.starts[:-1]):
            lo, hi = max(rows.start - first, 0), min(rows.stop - first, len(part))
            if lo < hi:
                out.append(np.asarray(part[int(lo):int(hi)]))
        return np.concatenate(out) if out else np.zeros((0, *self.shape[1:]), np.uint8)
