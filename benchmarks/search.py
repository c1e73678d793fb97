"""Semantic search benchmark: train on each offline text dataset for a fixed CPU budget, then compare with BM25,
TF-IDF and the frozen wordllama embeddings on the same held-out queries and corpus; then serve the reverse-dictionary
model's index of the WordNet corpus (117,659 documents) to 8 concurrent HTTP clients.

`--datasets movielens-100k` adds user -> item recommendation (leave-last-out, against popularity).

`--anchors` adds, per dataset and on the same held-out queries, the rows a practitioner would pick instead
(benchmarks/anchors.py): all-MiniLM-L6-v2 zero-shot, fine-tuned by sentence-transformers' trainer (MNRL) and by
contrastlab `pairs` with the same data, batch, steps and learning rate, wall time and peak memory of each, and
GradCache's peak memory at 4x the batch. Corpora over `--docs` (20,000) documents use a fixed, seeded sub-corpus
that holds every held-out query's documents. `--smoke` runs the whole path in about a minute (tiny budgets).

Goals (issue #5): reverse-dictionary nDCG@10 >= 1.5 x BM25's; English->Spanish recall@1 >= 0.90 on held-out verses;
the API at >= 500 queries/s with p99 < 50 ms on a 100k-document index.

    .venv/bin/python benchmarks/search.py                       # 15 minutes per dataset (default)
    .venv/bin/python benchmarks/search.py --minutes 3 --datasets verses-en-es
    .venv/bin/python benchmarks/search.py --minutes 3 --datasets verses-en-es --anchors --no-api --steps 150

Runs go to .bench/search/<dataset>; an existing finished run is reused unless --retrain. Shared machines are noisy:
every row of a table is measured in the same run, on the same queries.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import anchors  # noqa: E402  (benchmarks/anchors.py: the MiniLM rows)
# per dataset: the settings that differ from the defaults (found on this machine; see the closing notes of issue #5)
# threads=1: one core per run stays fast when another process shares the 2 cores (2 threads then slow 4x)
RECIPES = {
    "verses-en-es": ["--set", "threads=1", "--set", "batch_size=512", "--set", "lr=0.01", "--set", "temperature=0.05"],
    "wordnet": ["--set", "threads=1", "--set", "batch_size=512", "--set", "lr=0.01", "--set", "temperature=0.05"],
    "movielens-100k": ["--set", "threads=1", "--set", "batch_size=512", "--set", "lr=0.01"],
}
GOALS = {"verses-en-es": ("recall@1", "absolute", 0.90), "wordnet": ("ndcg@10", "x bm25", 1.5)}


def train(dataset: str, run: Path, minutes: float, retrain: bool, extra: list[str]) -> None:
    status = run / "status.json"
    if not retrain and status.exists() and json.loads(status.read_text()).get("state") == "done":
        print(f"{dataset}: reusing the finished run {run}", flush=True)
        return
    if run.exists():
        import shutil
        shutil.rmtree(run)
    cmd = [sys.executable, "-m", "contrastlab", "train", "pairs", "--data", dataset, "--minutes", str(minutes),
           "--run", str(run), "--no-eval", *RECIPES.get(dataset, []), *extra]
    print(f"{dataset}: training for {minutes:g} min: {' '.join(cmd[2:])}", flush=True)
    subprocess.run(cmd, check=True)


def evaluate(run: Path) -> dict:
    from contrastlab.train import evaluate_run
    return evaluate_run(run, log=lambda *a: print(*a, flush=True))


def table(dataset: str, results: dict) -> list[str]:
    r = results["retrieval"]
    rows = r["table"]
    cols = ["recall@1", "recall@10", "recall@100", "mrr@10", "ndcg@10", "map@100", "seconds"]
    out = [f"\n{dataset}: {r['queries']:,} held-out queries over {r['documents']:,} documents "
           f"(step {results['step']})",
           f"| {'encoder':<22} |" + "".join(f" {c:>10} |" for c in cols),
           "|" + "-" * 24 + "|" + "".join("-" * 11 + ":|" for _ in cols)]
    names = {"model": "ours (pairs, bag)", "bm25": "BM25 (bm25s)", "tfidf": "TF-IDF (char 3-5)",
             "wordllama": "wordllama (frozen)", "popularity": "popularity"}
    for key, row in rows.items():
        out.append(f"| {names.get(key, key):<22} |" + "".join(
            f" {row[c]:>10.3f} |" if isinstance(row.get(c), float) else f" {'':>10} |" for c in cols))
    metric, kind, goal = GOALS.get(dataset, (None, None, None))
    if metric and "model" in rows:
        ours = rows["model"][metric]
        if kind == "absolute":
            met = ours >= goal
            out.append(f"goal: {metric} >= {goal:.2f}: ours {ours:.3f} -> {'met' if met else 'MISSED'}")
        else:
            base = rows["bm25"][metric]
            ratio = ours / base if base else float("inf")
            out.append(f"goal: {metric} >= {goal:g} {kind}: ours {ours:.3f} / BM25 {base:.3f} = {ratio:.2f}x -> "
                       f"{'met' if ratio >= goal else 'MISSED'}")
    return out


def api(run: Path, seconds: float) -> list[str]:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "search_api.py"), "--run", str(run), "--data", "wordnet",
           "--seconds", str(seconds)]
    print("search API: " + " ".join(cmd[1:]), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        return [f"search API benchmark failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}"]
    return [line for line in p.stdout.splitlines() if not line.startswith("{")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=15.0, help="training budget per dataset (default 15)")
    ap.add_argument("--datasets", nargs="+", default=["verses-en-es", "wordnet"])
    ap.add_argument("--out", type=Path, default=ROOT / ".bench" / "search")
    ap.add_argument("--retrain", action="store_true", help="train again even if a finished run exists")
    ap.add_argument("--api-seconds", type=float, default=20.0)
    ap.add_argument("--no-api", action="store_true")
    ap.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                    help="extra training settings for every dataset")
    ap.add_argument("--anchors", action="store_true", help="add the MiniLM anchor rows (benchmarks/anchors.py)")
    anchors.add_options(ap)
    args = ap.parse_args()
    args.anchor_out = args.out / "anchors"
    if args.smoke:
        args.minutes, args.no_api = min(args.minutes, 0.2), True
    if args.anchors:
        anchors.finish_options(args)
    extra = [x for kv in args.extra for x in ("--set", kv)]
    report, runs = [f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"], {}
    t0 = time.perf_counter()
    for ds in args.datasets:
        run = args.out / ds
        train(ds, run, args.minutes, args.retrain, extra)
        runs[ds] = run
        report += table(ds, evaluate(run))
        if args.anchors and ds != "movielens-100k":
            report += anchors.run_dataset(ds, args, scratch=run, log=lambda *a: print(*a, flush=True))
    if not args.no_api and "wordnet" in runs:
        report += api(runs["wordnet"], args.api_seconds)
    report.append(f"\ntotal {(time.perf_counter() - t0) / 60:.1f} min; load average after: {os.getloadavg()[0]:.1f}")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
