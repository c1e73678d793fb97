"""Build a search index from Python: a corpus embedded by a run's text encoder (`index_corpus`), or an image-text
run's own images and names (`index_image_text_run`). `contrastlab index` calls these; errors are raised with
messages that name the setting (as its command-line option) and the value got.

>>> import json, tempfile
>>> from pathlib import Path
>>> class Letters:                                   # a tiny embedder: counts of a, b, c
...     dim = 3
...     def encode(self, texts, *, batch_size=256):
...         return np.array([[t.count(c) + 0.1 for c in "abc"] for t in texts], dtype=np.float32)
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "docs.jsonl").write_text("".join(json.dumps({"id": i, "text": t}) + "\\n"
...                                                for i, t in [("1", "aaa"), ("2", "bbb"), ("3", "ccc")]))
>>> index = index_corpus("letters", corpus=folder / "docs.jsonl", out=folder / "idx", embedder=Letters(),
...                      progress=False)
>>> index.count, index.search(Letters().encode(["bb"]), 1)[1]
(3, [['2']])
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

__all__ = ["load_run_embedder", "embed_texts", "embedder_source", "index_corpus", "index_image_text_run",
           "ImageTextIndexed", "index_image_run"]


def load_run_embedder(source):
    """The embedder of a run directory or a model spec (`contrastlab.search.embedders.load_embedder`)."""
    from . import embedders
    return embedders.load_embedder(str(source))


def embed_texts(embedder, texts: list[str], *, batch_size: int = 256, progress: bool = True) -> np.ndarray:
    """Embed `texts` in batches with a progress bar. Shape: (N,) -> (N, embedder.dim) float32.

    >>> class Ones:
    ...     dim = 2
    ...     def encode(self, texts, *, batch_size): return np.ones((len(texts), 2))
    >>> embed_texts(Ones(), ["a", "b", "c"], batch_size=2, progress=False).shape
    (3, 2)
    """
    from tqdm.auto import tqdm
    out = np.empty((len(texts), embedder.dim), dtype=np.float32)      # (N, D)
    with tqdm(total=len(texts), unit="doc", desc="embedding", disable=not progress) as bar:
        for i in range(0, len(texts), batch_size):
            chunk = np.asarray(embedder.encode(texts[i:i + batch_size], batch_size=batch_size), dtype=np.float32)
            if chunk.shape != (len(texts[i:i + batch_size]), embedder.dim):
                raise ValueError(f"the embedder returned shape {chunk.shape} for {len(texts[i:i + batch_size])} "
                                 f"texts, expected (n, {embedder.dim})")
            out[i:i + len(chunk)] = chunk
            bar.update(len(chunk))
    return out


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


def _tune_queries(queries, embedder, *, batch_size: int) -> np.ndarray | None:
    """The `queries` file embedded (None without one): what an approximate index measures its recall on."""
    if queries is None:
        return None
    lines = [t.strip() for t in Path(queries).read_text(encoding="utf-8").splitlines() if t.strip()]
    if not lines:
        raise ValueError(f"--queries {queries} holds no queries")
    return embed_texts(embedder, lines, batch_size=batch_size, progress=False)


def index_corpus(run, *, corpus, out, kind: str = "auto", queries=None, batch_size: int = 256,
                 progress: bool = True, embedder=None, on_note: Callable[[str], None] | None = None):
    """Read `corpus` (JSONL {"id", "text"} per line, or CSV id,text), embed it with `run`'s text encoder (or
    `embedder`), build a `VectorIndex` of `kind` (an approximate one tuned on the `queries` file when given) and
    save it to the folder `out`. Returns the index; `index.meta["embed_seconds"]` is the embedding time.
    `on_note(text)` hears what the corpus reader noticed (skipped rows ...)."""
    from ..data.pairs import read_corpus
    from .index import VectorIndex
    if not Path(corpus).is_file():
        raise FileNotFoundError(f"--corpus {corpus} does not exist or is not a file")
    if queries is not None and not Path(queries).is_file():
        raise FileNotFoundError(f"--queries {queries} does not exist or is not a file")
    ids, texts, notes = read_corpus(corpus)
    for note in notes if on_note is not None else ():
        on_note(note)
    if not ids:
        raise ValueError(f"{corpus} holds no documents")
    if embedder is None:
        embedder = load_run_embedder(run)
    start = time.perf_counter()
    vectors = embed_texts(embedder, texts, batch_size=batch_size, progress=progress)
    embed_seconds = time.perf_counter() - start
    tune = _tune_queries(queries, embedder, batch_size=batch_size)
    index = VectorIndex.build(vectors, ids, texts=texts, kind=kind, embedder=embedder_source(run, embedder),
                              tune_queries=tune)
    index.meta["embed_seconds"] = round(embed_seconds, 3)
    index.save(out)
    return index


class ImageTextIndexed(NamedTuple):
    """What `index_image_text_run` built: the index, and the dataset, split and language it holds."""
    index: object
    dataset: str
    split: str
    language: str


def index_image_text_run(run, *, out, split: str | None = None, language: str | None = None, kind: str = "auto",
                         queries=None, batch_size: int = 256, progress: bool = True,
                         embedder=None) -> ImageTextIndexed:
    """Index an image-text run's own dataset into the folder `out`: its images (`split`: all (default), train or
    test) embedded by the image tower, their names (`language`, default en, else the dataset's first) by the
    text tower, and a PNG thumbnail per image."""
    from ..train.config import TrainConfig
    from ..train.tasks import load_data
    from .multimodal import _run_config, build_image_text_index, is_image_text_run
    from ..rundir import RunDir
    given, run = run, Path(run)
    if not RunDir(run).exists():
        raise ValueError(f"--corpus is required unless RUN is an image-text run directory; {given} is not "
                         f"a run directory (no {RunDir(run).config_file.name})")
    if not is_image_text_run(run):
        raise ValueError(f"--corpus is required: {run} is not an image-text run (an image-text run, e.g. "
                         f"`contrastlab train clip --data emoji`, indexes its own images and names; an image run "
                         f"indexes images given with --images SPEC)")
    if queries is not None and not Path(queries).is_file():
        raise FileNotFoundError(f"--queries {queries} does not exist or is not a file")
    config = TrainConfig.from_dict(_run_config(run)["train"])
    data = load_data(config)                                      # the run's dataset, at its image size
    split = split or "all"
    rows = {"all": np.arange(data.images.shape[0]), "train": data.train_indices().numpy(),
            "test": data.test_indices().numpy()}[split]
    if not len(rows):
        raise ValueError(f"--split {split}: {data.name} has no {split} images")
    language = language or ("en" if "en" in data.texts else next(iter(data.texts)))
    if language not in data.texts:
        raise ValueError(f"--language must be one of {', '.join(data.texts)} (the languages of {data.name}), "
                         f"got {language!r}")
    if embedder is None:
        embedder = load_run_embedder(run)
    if not hasattr(embedder, "encode_images"):
        raise ValueError(f"the embedder of {run} has no image tower (encode_images)")
    tune = _tune_queries(queries, embedder, batch_size=batch_size)
    index = build_image_text_index(
        embedder, data.images[rows].numpy(), [data.ids[i] for i in rows], [data.texts[language][i] for i in rows],
        kind=kind, batch_size=batch_size, tune_queries=tune, progress=progress,
        source=embedder_source(run, embedder), meta={"data": config.data, "split": split, "language": language})
    index.save(out)
    return ImageTextIndexed(index, data.name, split, language)


def index_image_run(run, *, images: str, out, split: str | None = None, kind: str = "auto", batch_size: int = 256,
                    progress: bool = True, embedder=None) -> ImageTextIndexed:
    """Index the images of `images` (a `contrastlab.data.load_images` spec: folder:PATH, PATH.npz, fashion-mnist,
    digits, ...; `split`: all (default: train then test), train or test) with an image run's evaluation feature
    into the folder `out`: ids are the images' positions in that order ("0", "1", ...), texts their class names
    when the data has labels, and a PNG thumbnail each. Images of another size are resized to the run's (as
    `load_images(..., image_size=)` does: shorter side, centre crop); another channel count is an error."""
    from ..data import load_images
    from ..rundir import RunDir
    from .images import build_image_index
    if not RunDir(run).exists():
        raise ValueError(f"--images needs RUN to be an image run directory; {run} is not a run directory (no "
                         f"{RunDir(run).config_file.name})")
    if embedder is None:
        embedder = load_run_embedder(run)
    if not hasattr(embedder, "encode_images") or hasattr(embedder, "encode"):
        raise ValueError(f"--images is for an image run (SimCLR, BYOL, ... on images); {run} is "
                         + ("an image-text run: index its own data without --images" if hasattr(embedder, "encode")
                            else "not one"))
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
    split = split or "all"
    parts = {"train": [(data.x, data.y)], "test": [(data.x_test, data.y_test)] if data.x_test is not None else []}
    parts["all"] = parts["train"] + parts["test"]
    if not parts[split]:
        raise ValueError(f"--split {split}: {data.name} has no {split} images")
    source = _Concat([x for x, _ in parts[split]])
    labels = None
    if data.y is not None:
        names = data.classes or tuple(str(i) for i in range(int(max(int(y.max()) for _, y in parts[split])) + 1))
        labels = [names[int(v)] for _, y in parts[split] for v in y.tolist()]
    index = build_image_index(embedder, source, [str(i) for i in range(len(source))], labels, kind=kind,
                              batch_size=batch_size, progress=progress, source=embedder_source(run, embedder),
                              meta={"data": images, "split": split})
    index.save(out)
    return ImageTextIndexed(index, data.name, split, "")


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
