"""The `contrastlab index`, `search` and `serve` commands.

`add_search_commands(subparsers)` registers them; each sets `args.handler`, called as `args.handler(args)` and
returning the exit status. Handlers take an optional `embedder=` so tests (and callers with their own model) can
pass one; otherwise it is loaded from the run directory with `contrastlab.text.embedder.load_embedder`.

A text run indexes a corpus (`--corpus FILE`). An image-text run (`contrastlab train clip --data emoji`) indexes
its own dataset without `--corpus`: the images (image tower) and their names (text tower), with thumbnails; then
`contrastlab search INDEX "red heart"` lists images and `contrastlab search INDEX --image heart.png` names.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="contrastlab")
>>> add_search_commands(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["search", "my-index", "red shoes", "-k", "3"])
>>> args.handler is search_command, args.k
(True, 3)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from .kinds import KINDS

from ..cli import _positive_int  # noqa: E402 - one argument parser for every subcommand

__all__ = ["add_search_commands", "index_command", "index_image_text", "search_command", "serve_command",
           "embed_texts", "load_run_embedder", "format_hits"]



def add_search_commands(subparsers) -> None:
    """Add `index`, `search` and `serve` to an argparse subparsers object."""
    p = subparsers.add_parser("index", help="embed a corpus with a run's text encoder (or an image-text run's images "
                                            "and names) and build a search index",
                              description="Examples: contrastlab index runs/simcse --corpus docs.jsonl --out idx; "
                                          "contrastlab index runs/clip-emoji --out emoji-idx (an image-text run: "
                                          "its images and names)")
    p.add_argument("run", metavar="RUN", help="text run directory whose encoder embeds the corpus, a model spec "
                                              "(wordllama, hf:PATH, st:PATH), or an image-text run directory")
    p.add_argument("--corpus", type=Path, help="JSONL {\"id\", \"text\"} per line, or CSV id,text (required "
                                               "unless RUN is an image-text run, which indexes its own images and "
                                               "names)")
    p.add_argument("--split", choices=("all", "train", "test"), default=None,
                   help="image-text run: which of the dataset's images to index (default all)")
    p.add_argument("--language", metavar="LANG", default=None,
                   help="image-text run: the language of the names (default en, else the dataset's first)")
    p.add_argument("--out", type=Path, required=True, metavar="INDEX", help="index folder to write")
    p.add_argument("--kind", choices=KINDS, default="auto",
                   help="exact (FAISS flat), hnsw or ivf (approximate); auto: exact up to 50,000 documents")
    p.add_argument("--queries", type=Path, metavar="FILE",
                   help="sample queries, one per line: an approximate index measures its recall (and picks its "
                        "search effort) on them instead of on corpus-derived queries")
    p.add_argument("--batch-size", type=_positive_int, default=256, help="texts per encoder call (default 256)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=index_command)

    s = subparsers.add_parser("search", help="query an index from the command line",
                              description='Examples: contrastlab search idx "a red running shoe" -k 10; '
                                          'contrastlab search emoji-idx --image heart.png (an image-text index)')
    s.add_argument("index", type=Path, metavar="INDEX")
    s.add_argument("query", nargs="?", help="the query text (an image-text index: finds images)")
    s.add_argument("--image", type=Path, metavar="FILE",
                   help="image-text index: a PNG or JPEG file as the query instead (finds names)")
    s.add_argument("--target", choices=("images", "names"), default=None,
                   help="image-text index: the collection to search (default: images for a text, names for an "
                        "image)")
    s.add_argument("-k", type=_positive_int, default=10, help="results to show (default 10)")
    s.set_defaults(handler=search_command)

    v = subparsers.add_parser("serve", help="serve an index over HTTP (POST /search, GET /health)")
    v.add_argument("index", type=Path, metavar="INDEX")
    v.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    v.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    v.add_argument("--max-batch", type=_positive_int, default=64, help="most queries searched together")
    v.add_argument("--max-wait-ms", type=float, default=2.0, help="how long a query waits for others (ms)")
    v.add_argument("--max-image-bytes", type=_positive_int, default=512 * 1024,
                   help="image-text index: the largest query image accepted, in bytes (default 512 KiB)")
    v.set_defaults(handler=serve_command)


def _fail(command: str, message) -> int:
    print(f"contrastlab {command}: {message}", file=sys.stderr)
    return 2


def load_run_embedder(source):
    """The embedder of a run directory, via `contrastlab.text.embedder.load_embedder` (imported here, lazily)."""
    try:
        from ..text.embedder import load_embedder
    except ImportError as e:
        raise RuntimeError(f"cannot load the text encoder of {source}: contrastlab.text.embedder.load_embedder "
                           f"is not available ({e})") from None
    return load_embedder(str(source))


def embed_texts(embedder, texts: list[str], *, batch_size: int = 256, progress: bool = True) -> np.ndarray:
    """Embed `texts` in batches with a progress bar. Shape: (N,) -> (N, embedder.dim) float32."""
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


def format_hits(scores, ids, texts, *, width: int = 100) -> str:
    """Ranked lines `rank  score  id  text` (texts cut to `width` characters)."""
    lines = []
    for rank, (s, d, t) in enumerate(zip(scores, ids, texts), 1):
        t = "" if t is None else " ".join(t.split())
        lines.append(f"{rank:>3}  {s:7.4f}  {d}  {t if len(t) <= width else t[:width - 3] + '...'}")
    return "\n".join(lines)


def _source(run, embedder) -> str:
    """What `load_embedder` needs to load this embedder again: its own `source`, else the run's absolute path
    (or the spec as given, e.g. "wordllama")."""
    source = getattr(embedder, "source", None)
    if isinstance(source, str) and source:
        return source
    return str(Path(run).resolve()) if Path(run).exists() else str(run)


def index_command(args, *, embedder=None) -> int:
    """`contrastlab index RUN --corpus FILE --out INDEX`: read, embed, build, save; print count, time, recall.
    Without `--corpus`, RUN must be an image-text run: see `index_image_text`."""
    from ..data.pairs import read_corpus
    from .index import VectorIndex
    from .store import IndexFolderError
    if getattr(args, "corpus", None) is None:
        return index_image_text(args, embedder=embedder)
    if getattr(args, "split", None) is not None or getattr(args, "language", None) is not None:
        return _fail("index", "--split and --language choose an image-text run's images; with --corpus the "
                              "corpus is indexed")
    try:
        if not Path(args.corpus).is_file():
            raise FileNotFoundError(f"--corpus {args.corpus} does not exist or is not a file")
        if args.queries is not None and not Path(args.queries).is_file():
            raise FileNotFoundError(f"--queries {args.queries} does not exist or is not a file")
        ids, texts, notes = read_corpus(args.corpus)
        for note in notes:
            print(f"  note: {note}")
        if not ids:
            raise ValueError(f"{args.corpus} holds no documents")
        if embedder is None:
            embedder = load_run_embedder(args.run)
        start = time.perf_counter()
        vectors = embed_texts(embedder, texts, batch_size=args.batch_size, progress=not args.quiet)
        embed_seconds = time.perf_counter() - start
        tune = _tune_queries(args, embedder)
        index = VectorIndex.build(vectors, ids, texts=texts, kind=args.kind, embedder=_source(args.run, embedder),
                                  tune_queries=tune)
        index.meta["embed_seconds"] = round(embed_seconds, 3)
        index.save(args.out)
    except (FileNotFoundError, ValueError, RuntimeError, IndexFolderError, OSError) as e:
        return _fail("index", e)
    recall = index.meta.get("recall")
    print(f"indexed {index.count} documents (dim {index.dim}) into {args.out}: {index.kind}, embedded in "
          f"{embed_seconds:.1f} s, built in {index.meta['build_seconds']:.2f} s"
          + (f", recall@{index.meta['recall_k']} {recall:.3f} against exact search "
             f"({', '.join(f'{v:.3f} on {n}' for n, v in index.meta['recall_by_queries'].items())} queries, "
             f"{index.meta['recall_queries']} in all)" if recall is not None else " (exact search)"))
    if index.meta.get("note"):
        print(f"  note: {index.meta['note']}")
    return 0


def _tune_queries(args, embedder) -> np.ndarray | None:
    """The `--queries` file embedded (None without one): what an approximate index measures its recall on."""
    if args.queries is None:
        return None
    lines = [t.strip() for t in Path(args.queries).read_text(encoding="utf-8").splitlines() if t.strip()]
    if not lines:
        raise ValueError(f"--queries {args.queries} holds no queries")
    return embed_texts(embedder, lines, batch_size=args.batch_size, progress=False)


def index_image_text(args, *, embedder=None) -> int:
    """`contrastlab index RUN --out INDEX` for an image-text run: its dataset's images (`--split`, default all)
    embedded by the image tower, their names (`--language`) by the text tower, and a PNG thumbnail per image."""
    from ..train.config import TrainConfig
    from ..train.tasks import load_data
    from .multimodal import _run_config, build_image_text_index, is_image_text_run
    from .store import IndexFolderError
    run = Path(args.run)
    try:
        if not (run / "config.json").is_file():
            raise ValueError(f"--corpus is required unless RUN is an image-text run directory; {args.run} is not "
                             f"a run directory (no config.json)")
        if not is_image_text_run(run):
            raise ValueError(f"--corpus is required: {run} is not an image-text run (an image-text run, e.g. "
                             f"`contrastlab train clip --data emoji`, indexes its own images and names)")
        if args.queries is not None and not Path(args.queries).is_file():
            raise FileNotFoundError(f"--queries {args.queries} does not exist or is not a file")
        config = TrainConfig.from_dict(_run_config(run)["train"])
        data = load_data(config)                                      # the run's dataset, at its image size
        split = getattr(args, "split", None) or "all"
        rows = {"all": np.arange(data.images.shape[0]), "train": data.train_indices().numpy(),
                "test": data.test_indices().numpy()}[split]
        if not len(rows):
            raise ValueError(f"--split {split}: {data.name} has no {split} images")
        language = getattr(args, "language", None) or ("en" if "en" in data.texts else next(iter(data.texts)))
        if language not in data.texts:
            raise ValueError(f"--language must be one of {', '.join(data.texts)} (the languages of {data.name}), "
                             f"got {language!r}")
        if embedder is None:
            embedder = load_run_embedder(run)
        if not hasattr(embedder, "encode_images"):
            raise ValueError(f"the embedder of {run} has no image tower (encode_images)")
        tune = _tune_queries(args, embedder)
        index = build_image_text_index(
            embedder, data.images[rows].numpy(), [data.ids[i] for i in rows], [data.texts[language][i] for i in rows],
            kind=args.kind, batch_size=args.batch_size, tune_queries=tune, progress=not args.quiet,
            source=_source(run, embedder), meta={"data": config.data, "split": split, "language": language})
        index.save(args.out)
    except (FileNotFoundError, ValueError, RuntimeError, IndexFolderError, OSError) as e:
        return _fail("index", e)
    th, tw = index.meta["thumbnail_size"]
    print(f"indexed {index.images.count} images and {index.names.count} names ({language}) of {data.name} "
          f"({split}) into {args.out}: dim {index.dim}, {index.kind}, embedded in {index.meta['embed_seconds']:.1f} "
          f"s, thumbnails {tw}x{th} px ({len(index.thumbnails) / 1024:.0f} KiB)")
    for name, c in (("images", index.images), ("names", index.names)):
        if c.meta.get("recall") is not None:
            print(f"  {name}: recall@{c.meta['recall_k']} {c.meta['recall']:.3f} against exact search")
        if c.meta.get("note"):
            print(f"  note ({name}): {c.meta['note']}")
    return 0


def _load(path, embedder):
    from .store import open_index
    index = open_index(path)
    if embedder is None:
        source = index.meta.get("embedder")
        if not source:
            raise ValueError(f"{path} records no embedder (meta.json 'embedder' is empty): it was not built by "
                             f"`contrastlab index`, so text queries cannot be embedded")
        embedder = load_run_embedder(source)
    if embedder.dim != index.dim:
        raise ValueError(f"the embedder makes {embedder.dim}-dimensional vectors but {path} holds "
                         f"{index.dim}-dimensional ones")
    return index, embedder


def search_command(args, *, embedder=None) -> int:
    """`contrastlab search INDEX "query" -k 10`: print the ranked id, score and text. An image-text index: a text
    query lists images (id, name), `--image FILE` names; `--target` picks the collection."""
    from .multimodal import ImageTextIndex
    image, target = getattr(args, "image", None), getattr(args, "target", None)
    if (args.query is None) == (image is None):
        return _fail("search", "give a query text or --image FILE" + (", not both" if image is not None else ""))
    if args.query is not None and not args.query.strip():
        return _fail("search", "the query must not be empty")
    try:
        index, embedder = _load(args.index, embedder)
        if isinstance(index, ImageTextIndex):
            target = target or ("names" if image is not None else "images")
            query = (_image_query(image, embedder) if image is not None
                     else np.asarray(embedder.encode([args.query], batch_size=1), dtype=np.float32))   # (1, D)
            collection = index.collection(target)
        else:
            if image is not None or target is not None:
                raise ValueError(f"--image and --target are for an image-text index; {args.index} is a text index")
            query = np.asarray(embedder.encode([args.query], batch_size=1), dtype=np.float32)          # (1, D)
            collection = index
        scores, ids = collection.search(query, args.k)
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as e:
        return _fail("search", e)
    print(format_hits(scores[0].tolist(), ids[0], [collection.text_of(collection.position[d]) for d in ids[0]]))
    return 0


MAX_IMAGE_FILE = 64 << 20


def _image_query(path: Path, embedder) -> np.ndarray:
    """The image file `path` embedded by the image tower. Shape: (1, D)."""
    from .multimodal import ImageDecodeError
    if not hasattr(embedder, "prepare_image"):
        raise ValueError("the index's embedder has no image tower: it cannot embed --image")
    if not Path(path).is_file():
        raise FileNotFoundError(f"--image {path} does not exist or is not a file")
    if Path(path).stat().st_size > MAX_IMAGE_FILE:
        raise ValueError(f"--image {path} is larger than {MAX_IMAGE_FILE >> 20} MiB")
    try:
        pixels = embedder.prepare_image(Path(path).read_bytes())                    # (3, H, W) uint8
    except ImageDecodeError as e:
        raise ValueError(f"--image {path} {e}") from None
    return np.asarray(embedder.encode_images(pixels[None]), dtype=np.float32)


def serve_command(args, *, embedder=None) -> int:
    """`contrastlab serve INDEX [--host 127.0.0.1] [--port 8000]`: serve until Ctrl-C."""
    from .server import serve_index
    try:
        index, embedder = _load(args.index, embedder)
        serve_index(index, embedder, host=args.host, port=args.port, max_batch=args.max_batch,
                    max_wait_ms=args.max_wait_ms, max_image_bytes=getattr(args, "max_image_bytes", 512 * 1024))
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as e:
        return _fail("serve", e)
    return 0
