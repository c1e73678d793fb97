"""The `contrastlab` command: train, resume, evaluate, list datasets and losses, run the demo."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import __version__

DEMO_MINUTES = 3.0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    if value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite positive number, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int in [0, 2**63-1], got {text!r}") from None
    if not 0 <= value <= 2 ** 63 - 1:
        raise argparse.ArgumentTypeError(f"must be an int in [0, 2**63-1], got {value}")
    return value


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated fractions such as 0.01,0.1, got {text!r}") from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"every fraction must be in (0, 1], got {text!r}")
    return values


def _trackers(text: str) -> tuple[str, ...]:
    from .train.tracking import parse_trackers
    try:
        return parse_trackers(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    from .methods import list_methods
    parser = argparse.ArgumentParser(prog="contrastlab", description="Contrastive representation learning you can see.")
    parser.add_argument("--version", action="version", version=f"contrastlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help=f"train SimCLR on Fashion-MNIST for {DEMO_MINUTES:g} minutes, evaluate it, "
                                       f"and watch it live in the dashboard next to the playground")
    demo.add_argument("--minutes", type=_positive_float, default=DEMO_MINUTES)
    demo.add_argument("--run", type=Path, help="run directory (default: runs/demo-<time>)")
    demo.add_argument("--no-dashboard", action="store_true", help="only train and evaluate (no server)")
    demo.add_argument("--port", type=int, default=8765, help="dashboard port (0: any free port)")
    demo.add_argument("--host", default="127.0.0.1", help="dashboard address (default 127.0.0.1: this machine only)")
    demo.add_argument("--no-browser", action="store_true", help="do not open a browser tab")

    dash = sub.add_parser("dashboard", help="the live dashboard: the playground and a view of run directories")
    dash.add_argument("run_dirs", nargs="*", type=Path, metavar="RUN_DIR")
    dash.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    dash.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    dash.add_argument("--no-browser", action="store_true", help="do not open a browser tab")

    train = sub.add_parser("train", help="train an encoder; or --resume a run",
                           description="Train an encoder by contrast. Example: contrastlab train simclr "
                                       "--data fashion-mnist --minutes 15 --run runs/simclr")
    train.add_argument("method", nargs="?", choices=list_methods(), help="training method")
    train.add_argument("--data", default="fashion-mnist",
                       help="images: fashion-mnist (default), digits, PATH.npz, folder:PATH; text: verses-en-es, "
                            "wordnet, wordnet-synonyms, PATH.jsonl|.csv|.parquet (pairs), clicks:PATH, "
                            "interactions:PATH, movielens-100k; images with names: emoji, captions:PATH")
    train.add_argument("--corpus", type=Path, help="documents file (JSONL id,text or CSV) for a click log of ids")
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=_positive_float, help="training-time budget")
    budget.add_argument("--epochs", type=_positive_float)
    budget.add_argument("--steps", type=_positive_int)
    train.add_argument("--run", type=Path, help="run directory (default: runs/<method>-<time>)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="trainer or method setting, e.g. --set batch_size=512 --set temperature=0.5")
    train.add_argument("--recipe", metavar="NAME",
                       help="start from a paper's settings, e.g. simclr-32, mocov2-224 (`contrastlab recipes` lists "
                            "them); --set is applied after it; METHOD may be left out")
    train.add_argument("--resume", type=Path, metavar="RUN", help="continue RUN from its last checkpoint")
    train.add_argument("--device", metavar="DEVICE",
                       help="auto (default: this process's GPU when there is one, else the CPU), cpu, cuda, cuda:N "
                            "or mps (same as --set device=...; with --resume, where the run continues)")
    train.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--log", type=_trackers, metavar="TRACKERS",
                       help="also write the run to tracking tools: tensorboard (RUN/tensorboard), mlflow (a local "
                            "store RUN/mlflow, or --set mlflow_uri=URI / MLFLOW_TRACKING_URI), e.g. --log "
                            "tensorboard,mlflow (same as --set log=...)")
    train.add_argument("--nproc", type=_positive_int, metavar="N",
                       help="train in N processes on this machine (relaunches under torch.distributed.run; the "
                            "batch_size stays the global batch, split over the processes)")
    train.add_argument("--max-restarts", type=int, metavar="R",
                       help="with --nproc: restart all processes up to R times after a failure, resuming from the "
                            "last checkpoint")

    ev = sub.add_parser("eval", help="evaluate a run's encoder (writes RUN/eval.json)")
    ev.add_argument("run", type=Path)
    ev.add_argument("--device", metavar="DEVICE", help="where to embed: auto, cpu, cuda, cuda:N or mps (default: "
                                                        "the run's own setting)")
    ev.add_argument("--knn", action="store_true", help="weighted kNN top-1")
    ev.add_argument("--linear", action="store_true", help="linear probe top-1")
    ev.add_argument("--label-fractions", type=_fractions, metavar="F1,F2",
                    help="fine-tune with these fractions of the labels vs from scratch, e.g. 0.01,0.1")
    ev.add_argument("--k", type=_positive_int, default=200, help="neighbours for kNN (default 200)")
    ev.add_argument("--knn-temperature", type=_positive_float, default=0.1)
    ev.add_argument("--finetune-steps", type=_positive_int, default=500)
    ev.add_argument("--retrieval", action="store_true",
                    help="text runs: recall@1/10/100, MRR@10, nDCG@10, MAP with BM25, TF-IDF and wordllama alongside")

    from .search.commands import add_search_commands
    add_search_commands(sub)

    datasets = sub.add_parser("datasets", help="list the registered datasets: modality, spec forms, description")
    datasets.add_argument("--modality", help="only the datasets of this modality (image, text, image_text, ...)")

    recipes = sub.add_parser("recipes", help="list the training recipes (--recipe NAME) and what each follows")
    recipes.add_argument("method", nargs="?", choices=list_methods(), help="only this method's recipes")

    losses = sub.add_parser("losses", help="list the registered losses and their papers; --demo runs each")
    losses.add_argument("--demo", action="store_true", help="every loss on real embeddings, matched vs shuffled")
    losses.add_argument("--batch", type=_positive_int, default=512, help="pairs per batch (default 512, at most 1797)")
    losses.add_argument("--dim", type=_positive_int, default=32, help="embedding size (default 32, at most 64)")
    losses.add_argument("--seed", type=_seed, default=0)
    return parser


def _method_of(parser, args) -> str:
    """The method to train: METHOD, else the --recipe's (a recipe of another method is a clear error)."""
    if args.recipe is None:
        if args.method is None:
            parser.error("give a method (one of the choices), --recipe NAME or --resume RUN")
        return args.method
    from .train.recipes import recipe
    try:
        r = recipe(args.recipe)
    except ValueError as e:
        parser.error(str(e))
    if args.method is not None and args.method != r.method:
        from .train.recipes import list_recipes
        others = list_recipes(args.method)
        parser.error(f"recipe {r.name!r} trains {r.method!r}, not {args.method!r}; run `contrastlab train {r.method} "
                     f"--recipe {r.name}`" + (f", or use a {args.method} recipe: {others}" if others else ""))
    return r.method


def _recipes(args) -> int:
    from .train.recipes import list_recipes, recipe
    for name in list_recipes(args.method):
        print(f"{name:<12} {recipe(name).description}")
    return 0


def _relaunch(parser, args) -> int:
    """`--nproc N`: run this same command in N processes under torch.distributed.run (standalone rendezvous),
    each with cores / N threads; a failed run names the checkpoint to resume from."""
    import os
    import subprocess
    if "WORLD_SIZE" in os.environ:
        parser.error("--nproc starts its own processes; under torchrun leave it out (torchrun's "
                     "--nproc-per-node sets the number)")
    if args.resume is not None:
        run, cmd = args.resume, ["--resume", str(args.resume)]
        cmd += ["--device", args.device] if args.device is not None else []
    else:
        method = _method_of(parser, args)
        budget = [(f"--{k}", getattr(args, k)) for k in ("minutes", "epochs", "steps") if getattr(args, k) is not None]
        if not budget:
            parser.error("give a budget: --minutes, --epochs or --steps")
        run = args.run or Path("runs") / f"{method}-{time.strftime('%Y%m%d-%H%M%S')}"
        if (Path(run) / "config.json").exists():
            parser.exit(2, f"contrastlab train: run directory {run} already holds a run; resume it with "
                           f"`contrastlab train --resume {run} --nproc {args.nproc}` or choose another --run\n")
        cmd = [method, "--data", args.data, "--run", str(run), "--seed", str(args.seed), *budget[0]]
        cmd += ["--recipe", args.recipe] if args.recipe is not None else []
        cmd += ["--corpus", str(args.corpus)] if args.corpus is not None else []
        cmd += ["--log", ",".join(args.log) or "none"] if args.log is not None else []
        cmd += ["--device", args.device] if args.device is not None else []
        for item in args.overrides:
            cmd += ["--set", item]
    cmd = [str(c) for c in cmd] + (["--no-eval"] if args.no_eval else []) + (["--quiet"] if args.quiet else [])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // args.nproc))}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.nproc)]
    if args.max_restarts is not None:
        launcher += ["--max-restarts", str(args.max_restarts)]
    # "--" ends torchrun's own options: without it, argparse takes `--run` for an abbreviation of `--run-path`
    code = subprocess.call([*launcher, "-m", "--", "contrastlab", "train", *cmd], env=env)
    if code != 0:
        ckpt = Path(run) / "checkpoints" / "last.pt"
        where = (f"its last checkpoint is {ckpt}; continue with: contrastlab train --resume {run} --nproc "
                 f"{args.nproc}" if ckpt.exists() else f"no checkpoint was written to {run} yet")
        print(f"contrastlab train: the {args.nproc}-process run failed (exit code {code}); {where}", file=sys.stderr)
        return code if code > 0 else 1
    return 0


def _elastic_restart(args) -> bool:
    """Under torchrun --max-restarts, a restarted run whose directory already holds a checkpoint resumes it."""
    import os
    if args.resume is not None or args.run is None or int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) < 1:
        return False
    return (args.run / "config.json").exists() and (args.run / "checkpoints" / "last.pt").exists()


def _train(parser, args) -> int:
    import os

    from . import distributed
    from .io import CheckpointError
    from .methods import method_hyperparameters
    from .progress import quiet
    from .train import Trainer, TrainConfig, evaluate_run, parse_overrides
    from .train.rundir import RunInUse
    if args.max_restarts is not None and (args.nproc is None or args.max_restarts < 0):
        parser.error(f"--max-restarts needs --nproc N (under torchrun give torchrun's own --max-restarts) and must "
                     f"be >= 0, got {args.max_restarts}")
    if args.nproc is not None and args.nproc > 1:
        return _relaunch(parser, args)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    if _elastic_restart(args):
        if main_rank:
            print(f"restart {os.environ['TORCHELASTIC_RESTART_COUNT']}: resuming {args.run} from its last checkpoint")
        try:
            trainer = Trainer.resume(args.run, show_progress=not args.quiet, device=args.device)
        except (FileNotFoundError, CheckpointError, ValueError, RunInUse) as e:
            parser.exit(2, f"contrastlab train (restart): {e}\n")
    elif args.resume is not None:
        given = [f for f, v in (("method", args.method), ("--recipe", args.recipe), ("--run", args.run),
                                ("--set", args.overrides),
                                ("--corpus", args.corpus), ("--log", args.log),
                                ("--minutes", args.minutes), ("--epochs", args.epochs), ("--steps", args.steps))
                 if v]
        if given:
            parser.error(f"--resume continues a run with its saved settings; do not also give {', '.join(given)}")
        try:
            trainer = Trainer.resume(args.resume, show_progress=not args.quiet, device=args.device)
        except (FileNotFoundError, CheckpointError, ValueError, RunInUse) as e:
            parser.exit(2, f"contrastlab train --resume: {e}\n")
        if main_rank:
            print(f"restarting {args.resume} from step 0: it stopped before its first checkpoint" if trainer.restarting
                  else f"resuming {args.resume} at step {trainer.step} of {trainer.total_steps}")
    else:
        method = _method_of(parser, args)
        try:
            trainer_keys, method_keys = parse_overrides(args.overrides, method_keys=method_hyperparameters(method))
            budget = {k: getattr(args, k) for k in ("minutes", "epochs", "steps") if getattr(args, k) is not None}
            if not budget:
                parser.error("give a budget: --minutes, --epochs or --steps")
            run = args.run or Path("runs") / f"{method}-{time.strftime('%Y%m%d-%H%M%S')}"
            if args.corpus is not None:
                trainer_keys["data_options"] = {"corpus": str(args.corpus)}
            if args.log is not None:
                if "log" in trainer_keys:
                    parser.error("give --log or --set log=..., not both")
                trainer_keys["log"] = args.log
            if args.device is not None:
                if "device" in trainer_keys:
                    parser.error("give --device or --set device=..., not both")
                trainer_keys["device"] = args.device
            settings = {**budget, **trainer_keys, **({"final_eval": False} if args.no_eval else {})}
            if args.recipe is not None:
                from .train.recipes import build_config
                config = build_config(args.recipe, data=args.data, method=method, seed=args.seed,
                                      hyperparameters=method_keys, **settings)
            else:
                config = TrainConfig(method=method, data=args.data, seed=args.seed, hyperparameters=method_keys,
                                     **settings)
            trainer = Trainer.from_config(config, run, show_progress=not args.quiet)
        except (ValueError, FileNotFoundError, FileExistsError, OSError, RunInUse) as e:
            parser.exit(2, f"contrastlab train: {e}\n")
        if distributed.is_main():
            procs = f" in {distributed.world_size()} processes" if distributed.world_size() > 1 else ""
            print(f"training {method} on {args.data}{procs}"
                  f"{f' with recipe {args.recipe}' if args.recipe else ''}; run directory {trainer.run.path}")
            for note in getattr(trainer.data, "notes", ()):
                print(f"  note: {note}")
    from .train import TrainingDiverged
    from .train.evaluate import log_eval
    from .train.tracking import TrackingError
    try:
        with quiet(args.quiet):
            trainer.fit()
    except (FileExistsError, RunInUse, TrackingError) as e:
        parser.exit(2, f"contrastlab train: {e}\n")
    except TrainingDiverged as e:
        parser.exit(1, f"contrastlab train: {e}\n")
    except KeyboardInterrupt:
        if distributed.is_main():
            print(f"\ninterrupted at step {trainer.step}; continue with: contrastlab train --resume "
                  f"{trainer.run.path}")
        return 130
    if not distributed.is_main():
        return 0
    print(f"trained {trainer.step} steps in {trainer.elapsed / 60:.1f} min; checkpoint {trainer.run.last_checkpoint}")
    if trainer.config.final_eval and not args.no_eval:
        with quiet(args.quiet):
            results = evaluate_run(trainer.run.path, device=trainer.config.device)
        log_eval(trainer.run.path, results)
    return 0


def _eval(parser, args) -> int:
    from .io import CheckpointError
    from .train import evaluate_run
    from .train.evaluate import log_eval
    parts = [p for p, on in (("knn", args.knn), ("linear", args.linear),
                             ("label_fractions", args.label_fractions is not None)) if on]
    if args.retrieval:
        if parts:
            parser.error("--retrieval is for text runs; do not combine it with --knn, --linear or --label-fractions")
        parts = ["retrieval", "baselines"]
    parts = parts or None                  # the run's default parts (images or text)
    try:
        results = evaluate_run(args.run, parts=parts, label_fractions=args.label_fractions or (0.01, 0.1),
                               k=args.k, knn_temperature=args.knn_temperature, finetune_steps=args.finetune_steps,
                               device=args.device)
        log_eval(args.run, results)
    except (FileNotFoundError, CheckpointError, ValueError) as e:
        parser.exit(2, f"contrastlab eval: {e}\n")
    return 0


def _demo(parser, args) -> int:
    """Train in a child process (its own threads, its own progress bar) while this process serves the dashboard
    on the run and the playground; Ctrl-C stops both, and the run can be resumed."""
    import subprocess
    run = args.run or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    cmd = [sys.executable, "-m", "contrastlab", "train", "simclr", "--data", "fashion-mnist", "--minutes",
           str(args.minutes), "--run", str(run)]
    if args.no_dashboard:
        return main(cmd[3:])
    from .dashboard import dashboard
    child = subprocess.Popen(cmd)
    print(f"training in process {child.pid}; the dashboard shows {run} live and keeps serving after training "
          f"ends (Ctrl-C to stop)")
    try:
        return dashboard([run], host=args.host, port=args.port, open_browser=not args.no_browser)
    finally:
        if child.poll() is None:       # Ctrl-C reached the child too (same process group); make sure it stops
            import signal
            child.send_signal(signal.SIGINT)        # the trainer saves a checkpoint on SIGINT
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            if child.returncode != 0:
                print(f"training stopped; continue with: contrastlab train --resume {run}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        return _train(parser, args)
    if args.command == "eval":
        return _eval(parser, args)
    if args.command == "demo":
        return _demo(parser, args)
    if args.command == "recipes":
        return _recipes(args)
    if getattr(args, "handler", None) is not None:
        return args.handler(args)
    if args.command == "dashboard":
        from .dashboard import dashboard
        return dashboard(args.run_dirs, host=args.host, port=args.port, open_browser=not args.no_browser)
    if args.command == "datasets":
        from .data.registry import datasets_table           # importing contrastlab.data registers every loader
        try:
            rows = [("modality", "spec", "description"), *datasets_table(args.modality)]
        except ValueError as e:
            parser.error(f"--modality: {e}")
        w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
        for modality, forms, description in rows:
            print(f"{modality:<{w0}}  {forms:<{w1}}  {description}")
        return 0
    if args.command == "losses":
        if args.demo:
            if args.batch > 1797 or args.dim > 64:
                parser.error(f"--batch must be <= 1797 and --dim <= 64 (the digits data), got {args.batch} and "
                             f"{args.dim}")
            from .demo import run
            return run(batch=args.batch, dim=args.dim, seed=args.seed)
        from .losses import LOSSES
        from .losses.registry import INPUT_KINDS
        for name, spec in sorted(LOSSES.items()):
            print(f"{name:<20} {spec.module.__name__:<18} {spec.paper:<40} {INPUT_KINDS[spec.inputs]}")
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
