"""Search API benchmark: a 100,000-document index served by a real uvicorn server on 127.0.0.1, with 8 concurrent
clients for ~20 s. Prints queries/s, p50/p99 latency, index build time and the recall of the approximate index.

Targets of the issue: >= 500 queries/s with p99 < 50 ms on a 100k-document index.
Anchor measured in the same run: the same embed + search work done directly in this process, in batches of 8,
without HTTP (the ceiling the server could reach on this machine at this moment).

    .venv/bin/python benchmarks/search_api.py                      # synthetic texts, built-in hashed embedder
    .venv/bin/python benchmarks/search_api.py --data vectors       # random unit vectors, vector queries
    .venv/bin/python benchmarks/search_api.py --run runs/simcse    # a trained run's text encoder

The server runs in its own process (its own GIL); the clients are threads with keep-alive connections.
Shared machines are noisy: read the HTTP numbers against the anchor of the same run.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np


class HashedEmbedder:
    """A fast stand-in text encoder: each word hashes (CRC-32) to a fixed random vector; a text is the normalised
    sum of its words' vectors. Deterministic across processes."""

    def __init__(self, dim: int = 256, buckets: int = 1 << 15, seed: int = 0):
        self.dim, self.buckets = dim, buckets
        self.table = np.random.default_rng(seed).standard_normal((buckets, dim)).astype(np.float32)   # (V, D)

    def encode(self, texts, *, batch_size: int = 256) -> np.ndarray:
        from scipy.sparse import csr_matrix
        rows, cols = [], []
        for i, t in enumerate(texts):
            for w in t.lower().split():
                rows.append(i)
                cols.append(zlib.crc32(w.encode()) % self.buckets)
        counts = csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(texts), self.buckets))
        z = np.asarray(counts @ self.table)                                                        # (N, D)
        return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def synthetic_texts(n: int, *, topics: int = 1000, vocab: int = 50_000, seed: int = 0) -> list[str]:
    """Documents of 12 words, like product titles: 8 drawn from one of `topics` word lists of 12, and 4
    Zipf-distributed words from the whole vocabulary."""
    rng = np.random.default_rng(seed)
    topic_words = rng.integers(0, vocab, (topics, 12))
    t = rng.integers(0, topics, n)
    words = np.concatenate([topic_words[t[:, None], rng.integers(0, 12, (n, 8))],
                            rng.zipf(1.3, (n, 4)) % vocab], axis=1)                                  # (n, 12)
    return [" ".join(f"w{w}" for w in row) for row in words]


def wordnet_texts() -> tuple[list[str], list[str], list[str], list[str]]:
    """The real reverse-dictionary data: (corpus of all 117,659 synset documents, their ids, the 2,000 held-out
    definitions as served queries, 1,000 training definitions as tuning queries)."""
    from contrastlab.data import load_text
    d = load_text("wordnet")
    pick = np.random.default_rng(2).choice(len(d.train.anchors), 1000, replace=False)
    return list(d.test.corpus), list(d.test.doc_ids), list(d.test.queries), [d.train.anchors[i] for i in pick]


def queries_for(n: int, *, data: str, dim: int, seed: int = 1) -> list[dict]:
    """Benchmark requests: 6 of the 12 words of a new synthetic document, a random vector, or (wordnet) held-out
    definitions (seed 1) or training definitions (seed 2, for tuning)."""
    if data == "wordnet":
        _, _, served, tuning = wordnet_texts()
        return [{"query": q, "k": 10} for q in (served if seed == 1 else tuning)[:n]]
    rng = np.random.default_rng(seed)
    if data == "vectors":
        return [{"vector": v.round(5).tolist(), "k": 10} for v in rng.standard_normal((n, dim))]
    texts = synthetic_texts(n, seed=seed)
    return [{"query": " ".join(t.split()[:6]), "k": 10} for t in texts]                  # 6 words of a new document


def make_embedder(args):
    if args.run:
        from contrastlab.search import load_embedder
        return load_embedder(str(args.run))
    return None if args.data == "vectors" else HashedEmbedder(dim=args.dim)


def serve_child(args) -> None:
    """Runs in the server process: load the index, serve it on a free port (prints the URL first)."""
    from contrastlab.search import load_index
    from contrastlab.search.server import serve_index
    serve_index(load_index(args.serve_child), make_embedder(args), port=0, max_batch=args.max_batch,
                max_wait_ms=args.max_wait_ms)


def get_json(url: str, path: str) -> dict:
    host, port = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", path)
    out = json.loads(conn.getresponse().read())
    conn.close()
    return out


def load(url: str, bodies: list[dict], *, clients: int, seconds: float, warmup: float) -> dict:
    """`clients` threads send requests back to back on keep-alive connections; latencies of requests that
    finished inside the measured window (after `warmup`)."""
    host, port = url.split("//")[1].split(":")
    payloads = [json.dumps(b).encode() for b in bodies]
    start = time.perf_counter()
    t0, t1 = start + warmup, start + warmup + seconds
    records: list[list[tuple[float, float]]] = [[] for _ in range(clients)]
    errors: list[str] = []

    def client(c: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        i = c
        while True:
            now = time.perf_counter()
            if now >= t1:
                break
            conn.request("POST", "/search", body=payloads[i % len(payloads)],
                         headers={"Content-Type": "application/json"})
            reply = conn.getresponse()
            data = reply.read()
            done = time.perf_counter()
            if reply.status != 200:
                errors.append(f"{reply.status} {data[:200]!r}")
                break
            records[c].append((done, done - now))
            i += clients
        conn.close()

    stats_before = None

    def snapshot():
        nonlocal stats_before
        time.sleep(max(0.0, t0 - time.perf_counter()))
        stats_before = get_json(url, "/stats")

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    snap = threading.Thread(target=snapshot)
    for th in threads + [snap]:
        th.start()
    for th in threads + [snap]:
        th.join()
    stats_after = get_json(url, "/stats")
    if errors:
        raise SystemExit(f"a request failed: {errors[0]}")
    lat = np.array([d for rec in records for (t, d) in rec if t0 <= t < t1]) * 1000                 # ms
    batches = stats_after["batches"] - stats_before["batches"]
    return {"qps": len(lat) / seconds, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "mean_ms": float(lat.mean()), "requests": len(lat),
            "mean_batch": (stats_after["items"] - stats_before["items"]) / max(batches, 1)}


def direct_anchor(index, embedder, bodies: list[dict], *, batch: int, seconds: float) -> float:
    """Queries/s of embed + search in this process, `batch` queries per call, one faiss thread (as the server)."""
    import faiss
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        chunk = [bodies[(done + j) % len(bodies)] for j in range(batch)]
        if embedder is not None:
            q = embedder.encode([b["query"] for b in chunk])
        else:
            q = np.asarray([b["vector"] for b in chunk], dtype=np.float32)
        index.search(q, 10)
        done += batch
    faiss.omp_set_num_threads(before)
    return done / (time.perf_counter() - start)


def served_recall(index, embedder, bodies: list[dict]) -> float:
    """recall@10 of the index on the benchmark's own queries, against exact search (float32 brute force)."""
    from contrastlab.search import exact_top_k, recall_at_k
    q = embedder.encode([b["query"] for b in bodies]) if embedder is not None else \
        np.asarray([b["vector"] for b in bodies], dtype=np.float32)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    truth = np.concatenate([exact_top_k(index.vectors_at(None), q[i:i + 256], 10)[1] for i in range(0, len(q), 256)])
    _, ids = index.search(q, 10)
    return recall_at_k(np.array([[index.position[d] for d in row] for row in ids]), truth)


def serve_and_load(index, args, bodies: list[dict], folder: Path) -> dict:
    """Save the index, serve it from a child process, load it with the clients; the result and peak memory."""
    index.save(folder)
    cmd = [sys.executable, "-u", __file__, "--serve-child", str(folder), "--data", args.data, "--dim",
           str(args.dim), "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
    if args.run:
        cmd += ["--run", str(args.run)]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        if " on http://" not in line:
            raise SystemExit(f"the server did not start: {line!r}")
        url = line.split(" on ")[1].split()[0]
        result = load(url, bodies, clients=args.clients, seconds=args.seconds, warmup=args.warmup)
        with open(f"/proc/{server.pid}/status") as f:                   # peak resident memory of the server
            result["peak_mib"] = next(int(s.split()[1]) for s in f if s.startswith("VmHWM:")) / 1024
    finally:
        server.send_signal(2)
        server.wait(60)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=256, help="dimension of the built-in embedder / random vectors")
    ap.add_argument("--data", choices=("text", "vectors", "wordnet"), default="text",
                    help="text: synthetic titles; vectors: random unit vectors; wordnet: the real 117,659 synset "
                         "documents queried by held-out definitions (use with --run)")
    ap.add_argument("--run", type=Path, help="embed with this run's text encoder (contrastlab.text.embedder)")
    ap.add_argument("--kind", default="auto", choices=("auto", "exact", "hnsw", "ivf"))
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--max-wait-ms", type=float, default=2.0)
    ap.add_argument("--serve-child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_child:
        serve_child(args)
        return 0
    from contrastlab.search import VectorIndex

    embedder = make_embedder(args)
    t = time.perf_counter()
    ids = None
    if args.data == "vectors":
        x = np.random.default_rng(0).standard_normal((args.docs, args.dim)).astype(np.float32)
        texts = None
    elif args.data == "wordnet":
        texts, ids, _, _ = wordnet_texts()
        args.docs = len(texts)
        x = embedder.encode(texts)
    else:
        texts = synthetic_texts(args.docs)
        x = embedder.encode(texts)
    embed_s = time.perf_counter() - t
    t = time.perf_counter()
    index = VectorIndex.build(x, ids or [f"doc{i}" for i in range(args.docs)], texts=texts, kind=args.kind,
                              embedder=str(args.run) if args.run else None)
    build_s = time.perf_counter() - t
    del x
    bodies = queries_for(2000, data=args.data, dim=index.dim)
    phases = [("default tuning", dict(index.meta["params"]), index.meta.get("recall"))]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for phase in range(2 if index.kind != "exact" else 1):
            if phase == 1:                       # tune again on 1,000 held-out queries of the same kind
                held_out = queries_for(1000, data=args.data, dim=index.dim, seed=2)
                q = embedder.encode([b["query"] for b in held_out]) if embedder is not None else \
                    np.asarray([b["vector"] for b in held_out], dtype=np.float32)
                index.tune(queries=q)
                phases.append(("tuned on 1,000 sample queries", dict(index.meta["params"]), index.meta["recall"]))
            anchor = direct_anchor(index, embedder, bodies, batch=args.clients, seconds=3.0)
            result = serve_and_load(index, args, bodies, Path(tmp) / f"index{phase}")
            results.append({**result, "anchor": anchor, "served_recall": served_recall(index, embedder, bodies)})
    source = f"{'WordNet synset documents, ' if args.data == 'wordnet' else ''}run {args.run}" if args.run else \
        ("random unit vectors" if args.data == "vectors"
                                                  else "synthetic texts, hashed embedder")
    print(f"\nsearch API: {args.docs:,} documents ({source}, dim {index.dim}), {index.kind}, {os.cpu_count()} CPUs; "
          f"embedding the corpus {embed_s:.1f} s, index build {build_s:.1f} s")
    if index.meta.get("note"):
        print(f"note: {index.meta['note']}")
    effort = lambda p: ", ".join(f"{k}={v}" for k, v in p.items() if k in ("ef_search", "nprobe")) or "-"  # noqa
    rows = [("search effort", [effort(p) for _, p, _ in phases], ""),
            ("recall@10 at build (sample queries, worst set)",
             ["exact" if r is None else f"{r:.3f}" for _, _, r in phases], ""),
            ("recall@10 on the served queries vs exact", [f"{r['served_recall']:.3f}" for r in results], ""),
            (f"queries/s ({args.clients} clients, {args.seconds:g} s)", [f"{r['qps']:.0f}" for r in results],
             ">= 500"),
            ("p50 latency (ms)", [f"{r['p50_ms']:.1f}" for r in results], ""),
            ("p99 latency (ms)", [f"{r['p99_ms']:.1f}" for r in results], "< 50"),
            ("mean queries per batch", [f"{r['mean_batch']:.1f}" for r in results], ""),
            (f"anchor: direct embed+search, batches of {args.clients} (q/s)", [f"{r['anchor']:.0f}" for r in results],
             ""),
            ("HTTP / direct", [f"{r['qps'] / r['anchor']:.2f}" for r in results], ""),
            ("server peak memory (MiB)", [f"{r['peak_mib']:.0f}" for r in results], "")]
    heads = [name for name, _, _ in phases]
    print(f"| {'measure':<52} | " + " | ".join(f"{h:>29}" for h in heads) + f" | {'target':>7} |")
    print(f"|{'-' * 54}|" + "|".join("-" * 30 + ":" for _ in heads) + f"|{'-' * 9}|")
    for name, values, target in rows:
        print(f"| {name:<52} | " + " | ".join(f"{v:>29}" for v in values) + f" | {target:>7} |")
    print(json.dumps({"docs": args.docs, "kind": index.kind, "build_s": round(build_s, 2),
                      "phases": [{"name": n, "params": p, "recall": r, **{k: round(v, 3) for k, v in res.items()}}
                                 for (n, p, r), res in zip(phases, results)]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
