"""The `contrastlab index`, `search` and `serve` commands: their options here, their work in
`contrastlab.search.indexing` and `contrastlab.search.querying` (imported when a command runs, so building the
parser loads no faiss).

`register(subparsers)` adds them; each sets `args.handler`, called as `args.handler(args)` and returning the exit
status. Handlers take an optional `embedder=` so tests (and callers with their own model) can pass one; otherwise
it is loaded from the run directory with `contrastlab.search.load_embedder`.

Every run builds the same kind of index, of named collections: a text run indexes a corpus (`--corpus FILE`:
"texts"); an image run the images of `--images SPEC` ("images": its evaluation feature, with thumbnails and
labels); an image-text run (`contrastlab train clip --data emoji`) its own dataset without either ("images" and
"names"), or a corpus and/or images given. `contrastlab search INDEX "red heart"` then lists images,
`contrastlab search INDEX --image heart.png` names, and `--collection` picks another; `--exclude-self` leaves out
a query image that is in the index.

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
    p = subparsers.add_parser("index", help="embed a corpus (texts) and/or images with a run's encoders into a "
                                            "search index of named collections",
                              description="Examples: contrastlab index runs/simcse --corpus docs.jsonl --out idx; "
                                          "contrastlab index runs/clip-emoji --out emoji-idx (an image-text run: "
                                          "its images and names); contrastlab index runs/simclr-digits --images "
                                          "digits --out digits-idx (an image run)")
    p.add_argument("run", metavar="RUN", help="text run directory whose encoder embeds the corpus, a model spec "
                                              "(wordllama, hf:PATH, st:PATH), or an image-text run directory")
    p.add_argument("--corpus", type=Path, help="JSONL {\"id\", \"text\"} per line, or CSV id,text: the "
                                               "collection 'texts' (a text or image-text run)")
    p.add_argument("--images", metavar="SPEC", default=None,
                   help="the images to index (folder:PATH, PATH.npz, fashion-mnist, digits, ...): the collection "
                        "'images', with thumbnails and class labels (an image or image-text run). Without "
                        "--corpus and --images an image-text run indexes its own images and names")
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
    p.add_argument("--backend", choices=("faiss", "milvus"), default="faiss",
                   help="where the vectors live: faiss (in the index folder; the default) or milvus (a Milvus "
                        "database at --uri; the folder keeps where, and the thumbnails)")
    p.add_argument("--uri", default=None, help="--backend milvus: a milvus-lite file (idx.db) or a server "
                                               "(http://host:19530)")
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
    s.add_argument("--collection", metavar="NAME", default=None,
                   help="the collection to search: texts, images or names (default: across modalities where the "
                        "index has another: a text finds images, an image finds names)")
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
                   help="the largest query image accepted, in bytes (default 512 KiB)")
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
    """`contrastlab index RUN [--corpus FILE] [--images SPEC] --out INDEX`: embed, build, save (see
    `contrastlab.search.indexing.index_run`); print what each collection holds, the times and the recall."""
    from ..search.indexing import index_run
    from ..search.store import IndexFolderError
    try:
        index = index_run(args.run, out=args.out, corpus=args.corpus, images=getattr(args, "images", None),
                          split=getattr(args, "split", None), language=getattr(args, "language", None),
                          kind=args.kind, queries=args.queries, batch_size=args.batch_size, progress=not args.quiet,
                          embedder=embedder, on_note=lambda note: print(f"  note: {note}"),
                          backend=getattr(args, "backend", "faiss"), uri=getattr(args, "uri", None))
    except (FileNotFoundError, ValueError, RuntimeError, IndexFolderError, OSError) as e:
        return _fail("index", e)
    m = index.meta
    counts = " and ".join(f"{c.count} {name}" for name, c in index.collections.items())
    where = (f" of {m.get('dataset', m.get('data'))} ({m['split']}" + (f"; names in {m['language']}"
             if "language" in m else "") + ")") if "split" in m else ""
    kinds = "/".join(dict.fromkeys(c.kind for c in index.collections.values()))
    print(f"indexed {counts}{where} into {args.out}: dim {index.dim}, {kinds}"
          + (", labelled" if m.get("has_labels") else "") + f", embedded in {m['embed_seconds']:.1f} s"
          + (f", thumbnails {m['thumbnail_size'][1]}x{m['thumbnail_size'][0]} px" if "thumbnail_size" in m else "")
          + (f", vectors in Milvus at {args.uri}" if m.get("backend") == "milvus" else ""))
    for name, c in index.collections.items():
        cm = c.meta
        if cm.get("recall") is not None and cm.get("recall_by_queries"):
            print(f"  {name}: recall@{cm['recall_k']} {cm['recall']:.3f} against exact search ("
                  + ", ".join(f"{v:.3f} on {n}" for n, v in cm["recall_by_queries"].items())
                  + f" queries, {cm['recall_queries']} in all), built in {cm.get('build_seconds', 0):.2f} s")
        elif cm.get("recall") is None:
            print(f"  {name}: exact search, built in {cm.get('build_seconds', 0):.2f} s")
        if cm.get("note"):
            print(f"  note ({name}): {cm['note']}")
    index.close()
    return 0


def search_command(args, *, embedder=None) -> int:
    """`contrastlab search INDEX "query" -k 10` (or `--image FILE`): print the ranked id, score and text (a
    document, an image's name or its label) from the collection asked for (`--collection`; default: across
    modalities where the index has another)."""
    from ..search.querying import search_folder
    notes: list[str] = []
    try:
        hits = search_folder(args.index, args.query, image=getattr(args, "image", None),
                             collection=getattr(args, "collection", None), k=args.k, embedder=embedder,
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
