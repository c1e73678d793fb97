"""The `contrastlab index`, `search` and `serve` commands: their options here, their work in
`contrastlab.search.indexing` and `contrastlab.search.querying` (imported when a command runs, so building the
parser loads no faiss).

`register(subparsers)` adds them; each sets `args.handler`, called as `args.handler(args)` and returning the exit
status. Handlers take an optional `embedder=` so tests (and callers with their own model) can pass one; otherwise
it is loaded from the run directory with `contrastlab.search.load_embedder`.

A text run indexes a corpus (`--corpus FILE`). An image-text run (`contrastlab train clip --data emoji`) indexes
its own dataset without `--corpus`: the images (image tower) and their names (text tower), with thumbnails; then
`contrastlab search INDEX "red heart"` lists images and `contrastlab search INDEX --image heart.png` names. An image
run (SimCLR, BYOL, ... on images) indexes the images of `--images SPEC` (its evaluation feature, with thumbnails);
`contrastlab search INDEX --image photo.png [--exclude-self]` lists similar images with their labels.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="contrastlab")
>>> add_search_commands(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["search", "my-index", "red shoes", "-k", "3"])
>>> args.handler is search_command, args.k
(True, 3)
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..search.kinds import KINDS
from .types import positive_int

__all__ = ["register", "add_search_commands", "index_command", "search_command", "serve_command", "format_hits"]

def register(subparsers, top=None) -> None:
    """Add `index`, `search` and `serve` to an argparse subparsers object (`top`, the `contrastlab` parser, is
    not needed: these commands report their errors themselves)."""
    p = subparsers.add_parser("index", help="embed a corpus with a run's text encoder (or an image-text run's images "
                                            "and names) and build a search index",
                              description="Examples: contrastlab index runs/simcse --corpus docs.jsonl --out idx; "
                                          "contrastlab index runs/clip-emoji --out emoji-idx (an image-text run: "
                                          "its images and names); contrastlab index runs/simclr-digits --images "
                                          "digits --out digits-idx (an image run)")
    p.add_argument("run", metavar="RUN", help="text run directory whose encoder embeds the corpus, a model spec "
                                              "(wordllama, hf:PATH, st:PATH), or an image-text run directory")
    p.add_argument("--corpus", type=Path, help="JSONL {\"id\", \"text\"} per line, or CSV id,text (required "
                                               "unless RUN is an image-text run, which indexes its own images and "
                                               "names)")
    p.add_argument("--images", metavar="SPEC", default=None,
                   help="image run: the images to index (folder:PATH, PATH.npz, fashion-mnist, digits, ...), "
                        "embedded by the run's encoder (its evaluation feature), with thumbnails")
    p.add_argument("--split", choices=("all", "train", "test"), default=None,
                   help="image-text run, or --images: which of the dataset's images to index (default all)")
    p.add_argument("--language", metavar="LANG", default=None,
                   help="image-text run: the language of the names (default en, else the dataset's first)")
    p.add_argument("--out", type=Path, required=True, metavar="INDEX", help="index folder to write")
    p.add_argument("--kind", choices=KINDS, default="auto",
                   help="exact (FAISS flat), hnsw or ivf (approximate); auto: exact up to 50,000 documents")
    p.add_argument("--queries", type=Path, metavar="FILE",
                   help="sample queries, one per line: an approximate index measures its recall (and picks its "
                        "search effort) on them instead of on corpus-derived queries")
    p.add_argument("--batch-size", type=positive_int, default=256, help="texts per encoder call (default 256)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=index_command)

    s = subparsers.add_parser("search", help="query an index from the command line",
                              description='Examples: contrastlab search idx "a red running shoe" -k 10; '
                                          'contrastlab search emoji-idx --image heart.png (an image-text index)')
    s.add_argument("index", type=Path, metavar="INDEX")
    s.add_argument("query", nargs="?", help="the query text (an image-text index: finds images)")
    s.add_argument("--image", type=Path, metavar="FILE",
                   help="a PNG or JPEG file as the query instead (an image-text index: finds names; an image run's "
                        "index: similar images)")
    s.add_argument("--target", choices=("images", "names"), default=None,
                   help="image-text index: the collection to search (default: images for a text, names for an "
                        "image)")
    s.add_argument("-k", type=positive_int, default=10, help="results to show (default 10)")
    s.add_argument("--exclude-self", action="store_true",
                   help="leave out the query itself (and exact duplicates) when it is in the index")
    s.set_defaults(handler=search_command)

    v = subparsers.add_parser("serve", help="serve an index over HTTP (POST /search, GET /health)")
    v.add_argument("index", type=Path, metavar="INDEX")
    v.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    v.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    v.add_argument("--max-batch", type=positive_int, default=64, help="most queries searched together")
    v.add_argument("--max-wait-ms", type=float, default=2.0, help="how long a query waits for others (ms)")
    v.add_argument("--max-image-bytes", type=positive_int, default=512 * 1024,
                   help="image-text index: the largest query image accepted, in bytes (default 512 KiB)")
    v.set_defaults(handler=serve_command)


add_search_commands = register


def _fail(command: str, message) -> int:
    print(f"contrastlab {command}: {message}", file=sys.stderr)
    return 2


def format_hits(scores, ids, texts, *, width: int = 100) -> str:
    """Ranked lines `rank  score  id  text` (texts cut to `width` characters).

    >>> print(format_hits([0.5], ["d1"], ["a  short\\ntext"]))
      1   0.5000  d1  a short text
    """
    lines = []
    for rank, (s, d, t) in enumerate(zip(scores, ids, texts), 1):
        t = "" if t is None else " ".join(t.split())
        lines.append(f"{rank:>3}  {s:7.4f}  {d}  {t if len(t) <= width else t[:width - 3] + '...'}")
    return "\n".join(lines)


def index_command(args, *, embedder=None) -> int:
    """`contrastlab index RUN --corpus FILE --out INDEX`: read, embed, build, save; print count, time, recall.
    Without `--corpus`, RUN must be an image-text run: see `index_image_text`."""
    from ..search.indexing import index_corpus
    from ..search.store import IndexFolderError
    if getattr(args, "images", None) is not None:
        if getattr(args, "corpus", None) is not None or getattr(args, "language", None) is not None:
            return _fail("index", "--images indexes an image run's images; it takes no --corpus or --language")
        return index_images(args, embedder=embedder)
    if getattr(args, "corpus", None) is None:
        return index_image_text(args, embedder=embedder)
    if getattr(args, "split", None) is not None or getattr(args, "language", None) is not None:
        return _fail("index", "--split and --language choose an image-text run's images; with --corpus the "
                              "corpus is indexed")
    try:
        index = index_corpus(args.run, corpus=args.corpus, out=args.out, kind=args.kind, queries=args.queries,
                             batch_size=args.batch_size, progress=not args.quiet, embedder=embedder,
                             on_note=lambda note: print(f"  note: {note}"))
    except (FileNotFoundError, ValueError, RuntimeError, IndexFolderError, OSError) as e:
        return _fail("index", e)
    recall = index.meta.get("recall")
    print(f"indexed {index.count} documents (dim {index.dim}) into {args.out}: {index.kind}, embedded in "
          f"{index.meta['embed_seconds']:.1f} s, built in {index.meta['build_seconds']:.2f} s"
          + (f", recall@{index.meta['recall_k']} {recall:.3f} against exact search "
             f"({', '.join(f'{v:.3f} on {n}' for n, v in index.meta['recall_by_queries'].items())} queries, "
             f"{index.meta['recall_queries']} in all)" if recall is not None else " (exact search)"))
    if index.meta.get("note"):
        print(f"  note: {index.meta['note']}")
    return 0


def index_image_text(args, *, embedder=None) -> int:
    """`contrastlab index RUN --out INDEX` for an image-text run: its dataset's images (`--split`, default all)
    embedded by the image tower, their names (`--language`) by the text tower, and a PNG thumbnail per image."""
    from ..search.indexing import index_image_text_run
    from ..search.store import IndexFolderError
    try:
        index, dataset, split, language = index_image_text_run(
            args.run, out=args.out, split=getattr(args, "split", None), language=getattr(args, "language", None),
            kind=args.kind, queries=args.queries, batch_size=args.batch_size, progress=not args.quiet,
            embedder=embedder)
    except (FileNotFoundError, ValueError, RuntimeError, IndexFolderError, OSError) as e:
        return _fail("index", e)
    th, tw = index.meta["thumbnail_size"]
    print(f"indexed {index.images.count} images and {index.names.count} names ({language}) of {dataset} "
          f"({split}) into {args.out}: dim {index.dim}, {index.kind}, embedded in {index.meta['embed_seconds']:.1f} "
          f"s, thumbnails {tw}x{th} px ({len(index.thumbnails) / 1024:.0f} KiB)")
    for name, c in (("images", index.images), ("names", index.names)):
        if c.meta.get("recall") is not None:
            print(f"  {name}: recall@{c.meta['recall_k']} {c.meta['recall']:.3f} against exact search")
        if c.meta.get("note"):
            print(f"  note ({name}): {c.meta['note']}")
    return 0


def index_images(args, *, embedder=None) -> int:
    """`contrastlab index RUN --images SPEC --out INDEX` for an image run: the images embedded by the run's
    encoder (its evaluation feature), with their class names when known and a PNG thumbnail each."""
    from ..search.indexing import index_image_run
    from ..search.store import IndexFolderError
    try:
        index, dataset, split, _ = index_image_run(
            args.run, images=args.images, out=args.out, split=getattr(args, "split", None), kind=args.kind,
            batch_size=args.batch_size, progress=not args.quiet, embedder=embedder)
    except (FileNotFoundError, ValueError, RuntimeError, IndexFolderError, OSError) as e:
        return _fail("index", e)
    th, tw = index.meta["thumbnail_size"]
    c = index.images
    print(f"indexed {c.count} images of {dataset} ({split}) into {args.out}: dim {index.dim}, {index.kind}"
          f"{', labelled' if index.meta['has_labels'] else ''}, embedded in {index.meta['embed_seconds']:.1f} s, "
          f"thumbnails {tw}x{th} px ({len(index.thumbnails) / 1024:.0f} KiB)"
          + (f", recall@{c.meta['recall_k']} {c.meta['recall']:.3f} against exact search"
             if c.meta.get("recall") is not None else ""))
    if c.meta.get("note"):
        print(f"  note: {c.meta['note']}")
    return 0


def search_command(args, *, embedder=None) -> int:
    """`contrastlab search INDEX "query" -k 10`: print the ranked id, score and text. An image-text index: a text
    query lists images (id, name), `--image FILE` names; `--target` picks the collection."""
    from ..search.querying import search_folder
    notes: list[str] = []
    try:
        hits = search_folder(args.index, args.query, image=getattr(args, "image", None),
                             target=getattr(args, "target", None), k=args.k, embedder=embedder,
                             exclude_self=getattr(args, "exclude_self", False), notes=notes)
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as e:
        return _fail("search", e)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    scores, ids, texts = ([h[i] for h in hits] for i in range(3))
    print(format_hits(scores, ids, texts))
    return 0


def serve_command(args, *, embedder=None) -> int:
    """`contrastlab serve INDEX [--host 127.0.0.1] [--port 8000]`: serve until Ctrl-C."""
    from ..search.querying import serve_folder
    try:
        serve_folder(args.index, host=args.host, port=args.port, max_batch=args.max_batch,
                     max_wait_ms=args.max_wait_ms, max_image_bytes=getattr(args, "max_image_bytes", 512 * 1024),
                     embedder=embedder)
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as e:
        return _fail("serve", e)
    return 0
