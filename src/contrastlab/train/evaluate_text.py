"""Offline evaluation of a text run: retrieval on the held-out queries over the full test corpus, with BM25, TF-IDF
and the frozen wordllama embeddings on the same queries and corpus in the same table (`RUN/eval.json` key
`retrieval`). Keys per row: recall@1/10/100, success@k, mrr@10, ndcg@10, map@100.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

__all__ = ["evaluate_text", "TEXT_PARTS"]

TEXT_PARTS = ("retrieval", "baselines")
KS = (1, 10, 100)                  # recall@k cut-offs; MRR and nDCG at 10, MAP at 100


def _history(test) -> list[list[int]]:
    """Per query, the corpus items it names (a user's history): whitespace tokens that are corpus documents."""
    where = {t: i for i, t in enumerate(test.corpus)}
    return [sorted({where[w] for w in q.split() if w in where}) for q in test.queries]


def _drop_seen(ranked, seen: list[list[int]], k: int):
    """Remove each row's seen items from a ranking (Q, K) and keep the first k. -1 pads what cannot be filled."""
    import torch
    out = torch.full((ranked.shape[0], k), -1, dtype=torch.long)
    for r, (row, skip) in enumerate(zip(ranked.tolist(), seen)):
        skip = set(skip)
        kept = [j for j in row if j >= 0 and j not in skip][:k]
        out[r, :len(kept)] = torch.tensor(kept, dtype=torch.long)
    return out


def _popularity(trainer, test, k: int, seen):
    from ..eval.text_baselines import popularity_rank
    counts = {}
    for p in trainer.data.train.positives:
        counts[p] = counts.get(p, 0) + 1
    return popularity_rank([counts.get(t, 0) for t in test.corpus], k=k, exclude=seen)


def evaluate_text(trainer, *, parts=TEXT_PARTS, baselines=None, batch_size: int = 512, log=print) -> dict:
    """Retrieval metrics of the run's encoder and of `baselines` (default: what the data names, e.g. BM25, TF-IDF
    and wordllama for text, popularity for user -> item recommendation) on the held-out queries."""
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
        seen = _history(test) if trainer.data.exclude_history else None
        extra = max(map(len, seen)) if seen else 0
        ranked = rank(queries, docs, k=KS[-1] + extra)                  # (Q, K); -1 past the corpus
        if seen:
            ranked = _drop_seen(ranked, seen, KS[-1])
        table["model"] = {**retrieval_metrics(ranked, test.relevant, ks=KS, cutoff=10,
                                              num_docs=len(test.corpus)), "seconds": time.perf_counter() - t}
    if "baselines" in parts:
        names = list(trainer.data.baselines if baselines is None else baselines)
        log(f"baselines on the same queries and corpus: {', '.join(names)}")
        if "popularity" in names:
            names.remove("popularity")
            seen = _history(test) if trainer.data.exclude_history else None
            t = time.perf_counter()
            ranked = _popularity(trainer, test, KS[-1], seen)
            table["popularity"] = {**retrieval_metrics(ranked.expand(len(test.queries), -1), test.relevant, ks=KS,
                                                       cutoff=10, num_docs=len(test.corpus)),
                                   "seconds": time.perf_counter() - t}
        try:
            if names:
                table.update(text_baselines(test, k=KS[-1], which=names, ks=KS, cutoff=10))
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
