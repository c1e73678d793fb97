"""Offline evaluation of a text run: retrieval on the held-out queries over the full test corpus, with BM25, TF-IDF
and the frozen wordllama embeddings on the same queries and corpus in the same table (`RUN/eval.json` key
`retrieval`). Keys per row: recall@1/10/100, success@k, mrr@10, ndcg@10, map@100.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

__all__ = ["evaluate_text", "TEXT_PARTS"]

TEXT_PARTS = ("retrieval", "baselines")


def evaluate_text(trainer, *, parts=TEXT_PARTS, baselines=("bm25", "tfidf", "wordllama"), batch_size: int = 512,
                  log=print) -> dict:
    from ..eval.retrieval import rank, retrieval_metrics
    from ..eval.text_baselines import text_baselines
    from ..models.text import encode_texts
    bad = sorted(set(parts) - set(TEXT_PARTS))
    if bad:
        raise ValueError(f"unknown evaluation parts {bad} for a text run; choose from {list(TEXT_PARTS)}")
    cfg, test = trainer.config, trainer.data.test
    out: dict = {"method": cfg.method, "data": cfg.data, "step": trainer.step,
                 "evaluated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "skipped": {}}
    if test is None:
        out["skipped"] = {p: "the data has no held-out test queries" for p in parts}
        return out
    t0 = time.perf_counter()
    table = {}
    if "retrieval" in parts:
        log(f"retrieval: {len(test.queries):,} held-out queries over {len(test.corpus):,} documents")
        enc = trainer.method.encoder
        t = time.perf_counter()
        docs = encode_texts(enc, list(test.corpus), batch_size=batch_size)              # (N, D)
        queries = encode_texts(enc, list(test.queries), batch_size=batch_size)          # (Q, D)
        ranked = rank(queries, docs, k=min(100, len(test.corpus)))
        ks = tuple(k for k in (1, 10, 100) if k <= len(test.corpus))
        table["model"] = {**retrieval_metrics(ranked, test.relevant, ks=ks, cutoff=min(10, ks[-1]),
                                              num_docs=len(test.corpus)), "seconds": time.perf_counter() - t}
    if "baselines" in parts:
        log(f"baselines on the same queries and corpus: {', '.join(baselines)}")
        ks = tuple(k for k in (1, 10, 100) if k <= len(test.corpus))
        try:
            table.update(text_baselines(test, k=ks[-1], which=baselines, ks=ks, cutoff=min(10, ks[-1])))
        except (ImportError, OSError, RuntimeError) as e:          # e.g. wordllama weights missing: say so
            out["skipped"]["baselines"] = f"{type(e).__name__}: {e}"
    out["retrieval"] = {"queries": len(test.queries), "documents": len(test.corpus), "table": table}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def format_retrieval(results: dict) -> str:
    """The retrieval table as text: one row per encoder, the usual columns."""
    r = results.get("retrieval")
    if not r:
        return "no retrieval results"
    cols = [c for c in ("recall@1", "recall@10", "recall@100", "mrr@10", "ndcg@10", "map@100")
            if any(c in row for row in r["table"].values())]
    lines = [f"retrieval on {r['queries']:,} held-out queries over {r['documents']:,} documents ({results['data']})",
             f"{'encoder':<12}" + "".join(f"{c:>11}" for c in cols)]
    for name, row in r["table"].items():
        lines.append(f"{name:<12}" + "".join(f"{row[c]:>11.3f}" if c in row else f"{'':>11}" for c in cols))
    return "\n".join(lines)
