"""The `contrastlab index`, `search` and `serve` commands.

`add_search_commands(subparsers)` registers them; each sets `args.handler`, called as `args.handler(args)` and
returning the exit status. Handlers take an optional `embedder=` so tests (and callers with their own model) can
pass one; otherwise it is loaded from the run directory with `contrastlab.text.embedder.load_embedder`.

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

__all__ = ["add_search_commands", "index_command", "search_command", "serve_command", "embed_texts",
           "load_run_embedder", "format_hits"]



def add_search_commands(subparsers) -> None:
    """Add `index`, `search` and `serve` to an argparse subparsers object."""
    p = subparsers.add_parser("index", help="embed a corpus with a run's text encoder and build a search index",
                              description="Example: contrastlab index runs/simcse --corpus docs.jsonl --out idx")
    p.add_argument("run", metavar="RUN", help="text run directory whose encoder embeds the corpus, or a model spec "
                                              "(wordllama, hf:PATH, st:PATH)")
    p.add_argument("--corpus", type=Path, required=True, help="JSONL {\"id\", \"text\"} per line, or CSV id,text")
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
                              description='Example: contrastlab search idx "a red running shoe" -k 10')
    s.add_argument("index", type=Path, metavar="INDEX")
    s.add_argument("query")
    s.add_argument("-k", type=_positive_int, default=10, help="results to show (default 10)")
    s.set_defaults(handler=search_command)

    v = subparsers.add_parser("serve", help="serve an index over HTTP (POST /search, GET /health)")
    v.add_argument("index", type=Path, metavar="INDEX")
    v.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    v.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    v.add_argument("--max-batch", type=_positive_int, default=64, help="most queries searched together")
    v.add_argument("--max-wait-ms", type=float, default=2.0, help="how long a query waits for others (ms)")
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
    """`contrastlab index RUN --corpus FILE --out INDEX`: read, embed, build, save; print count, time, recall."""
    from ..data.pairs import read_corpus
    from .index import VectorIndex
    from .store import IndexFolderError
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
        tune = None
        if args.queries is not None:
            lines = [t.strip() for t in Path(args.queries).read_text(encoding="utf-8").splitlines() if t.strip()]
            if not lines:
                raise ValueError(f"--queries {args.queries} holds no queries")
            tune = embed_texts(embedder, lines, batch_size=args.batch_size, progress=False)
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


def _load(path, embedder):
    from .store import load_index
    index = load_index(path)
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
    """`contrastlab search INDEX "query" -k 10`: print the ranked id, score and text."""
    if not args.query.strip():
        return _fail("search", "the query must not be empty")
    try:
        index, embedder = _load(args.index, embedder)
        query = np.asarray(embedder.encode([args.query], batch_size=1), dtype=np.float32)     # (1, D)
        scores, ids = index.search(query, args.k)
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as e:
        return _fail("search", e)
    print(format_hits(scores[0].tolist(), ids[0], [index.text_of(index.position[d]) for d in ids[0]]))
    return 0


def serve_command(args, *, embedder=None) -> int:
    """`contrastlab serve INDEX [--host 127.0.0.1] [--port 8000]`: serve until Ctrl-C."""
    from .server import serve_index
    try:
        index, embedder = _load(args.index, embedder)
        serve_index(index, embedder, host=args.host, port=args.port, max_batch=args.max_batch,
                    max_wait_ms=args.max_wait_ms)
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as e:
        return _fail("serve", e)
    return 0
