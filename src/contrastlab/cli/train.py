"""The `contrastlab train` command: train an encoder, `--resume` a run, start from a `--recipe`, or relaunch
itself in `--nproc N` processes under torch.distributed.run. Its options are registered with cheap imports only;
the trainer (torch, the data, the methods' training code) is imported when the command runs.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="contrastlab")
>>> register(parser.add_subparsers(dest="command"), parser)
>>> args = parser.parse_args(["train", "simclr", "--steps", "3", "--set", "batch_size=64"])
>>> args.method, args.steps, args.overrides
('simclr', 3, ['batch_size=64'])
"""
from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

from .types import positive_float, positive_int, trackers

__all__ = ["register", "train_command"]


def register(subparsers, top) -> None:
    """Add `train` to an argparse subparsers object; its usage errors are reported by `top`, the `contrastlab`
    parser."""
    from ..methods import list_methods
    train = subparsers.add_parser("train", help="train an encoder; or --resume a run",
                                  description="Train an encoder by contrast. Example: contrastlab train simclr "
                                              "--data fashion-mnist --minutes 15 --run runs/simclr")
    train.add_argument("method", nargs="?", choices=list_methods(), help="training method")
    train.add_argument("--data", default="fashion-mnist",
                       help="images: fashion-mnist (default), digits, PATH.npz, folder:PATH; text: verses-en-es, "
                            "wordnet, wordnet-synonyms, PATH.jsonl|.csv|.parquet (pairs), clicks:PATH, "
                            "interactions:PATH, movielens-100k; images with names: emoji, captions:PATH; sequences: "
                            "ucr:NAME (UCR/UEA, e.g. ucr:ArrowHead), series:PATH.npz|.csv|.parquet")
    train.add_argument("--corpus", type=Path, help="documents file (JSONL id,text or CSV) for a click log of ids")
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=positive_float, help="training-time budget")
    budget.add_argument("--epochs", type=positive_float)
    budget.add_argument("--steps", type=positive_int)
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
    train.add_argument("--log", type=trackers, metavar="TRACKERS",
                       help="also write the run to tracking tools: tensorboard (RUN/tensorboard), mlflow (a local "
                            "store RUN/mlflow, or --set mlflow_uri=URI / MLFLOW_TRACKING_URI), e.g. --log "
                            "tensorboard,mlflow (same as --set log=...)")
    train.add_argument("--nproc", type=positive_int, metavar="N",
                       help="train in N processes on this machine (relaunches under torch.distributed.run; the "
                            "batch_size stays the global batch, split over the processes)")
    train.add_argument("--max-restarts", type=int, metavar="R",
                       help="with --nproc: restart all processes up to R times after a failure, resuming from the "
                            "last checkpoint")
    train.set_defaults(handler=functools.partial(train_command, parser=top))


def method_of(parser, args) -> str:
    """The method to train: METHOD, else the --recipe's (a recipe of another method is a clear error)."""
    if args.recipe is None:
        if args.method is None:
            parser.error("give a method (one of the choices), --recipe NAME or --resume RUN")
        return args.method
    from ..train.recipes import recipe
    try:
        r = recipe(args.recipe)
    except ValueError as e:
        parser.error(str(e))
    if args.method is not None and args.method != r.method:
        from ..train.recipes import list_recipes
        others = list_recipes(args.method)
        parser.error(f"recipe {r.name!r} trains {r.method!r}, not {args.method!r}; run `contrastlab train {r.method} "
                     f"--recipe {r.name}`" + (f", or use a {args.method} recipe: {others}" if others else ""))
    return r.method


def _relaunch(parser, args) -> int:
    """`--nproc N`: run this same command in N processes under torch.distributed.run (standalone rendezvous),
    each with cores / N threads; a failed run names the checkpoint to resume from."""
    import os

    from ..rundir import RunDir
    import subprocess
    if "WORLD_SIZE" in os.environ:
        parser.error("--nproc starts its own processes; under torchrun leave it out (torchrun's "
                     "--nproc-per-node sets the number)")
    if args.resume is not None:
        run, cmd = args.resume, ["--resume", str(args.resume)]
        cmd += ["--device", args.device] if args.device is not None else []
    else:
        method = method_of(parser, args)
        budget = [(f"--{k}", getattr(args, k)) for k in ("minutes", "epochs", "steps") if getattr(args, k) is not None]
        if not budget:
            parser.error("give a budget: --minutes, --epochs or --steps")
        run = args.run or Path("runs") / f"{method}-{time.strftime('%Y%m%d-%H%M%S')}"
        if RunDir(run).exists():
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
        ckpt = RunDir(run).last_checkpoint
        where = (f"its last checkpoint is {ckpt}; continue with: contrastlab train --resume {run} --nproc "
                 f"{args.nproc}" if ckpt.exists() else f"no checkpoint was written to {run} yet")
        print(f"contrastlab train: the {args.nproc}-process run failed (exit code {code}); {where}", file=sys.stderr)
        return code if code > 0 else 1
    return 0


def _first_stage(mine):
    """The embedder of the run that mines hard negatives (`--set mine=RUN`), or None (none, bm25)."""
    if mine in (None, "none", "bm25"):
        return None
    from ..devices import CPU
    from ..runs import load_run
    return load_run(mine, device=CPU).embedder()


def _elastic_restart(args) -> bool:
    """Under torchrun --max-restarts, a restarted run whose directory already holds a checkpoint resumes it."""
    import os

    from ..rundir import RunDir
    if args.resume is not None or args.run is None or int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) < 1:
        return False
    run = RunDir(args.run)
    return run.exists() and run.started()


def train_command(args, *, parser) -> int:
    """`contrastlab train METHOD --data DATA --minutes M --run RUN` (or `--resume RUN`): train, then evaluate."""
    import os

    from ..rundir import RunDir

    from .. import distributed
    from ..io import CheckpointError
    from ..methods import method_hyperparameters
    from ..progress import quiet
    from ..train import Trainer, TrainConfig, evaluate_run, parse_overrides
    from ..train.rundir import RunInUse
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
            trainer = Trainer.resume(args.run, show_progress=not args.quiet, device=args.device,
                                     first_stage=_first_stage(RunDir(args.run).config()["train"].get("mine")))
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
            trainer = Trainer.resume(args.resume, show_progress=not args.quiet, device=args.device,
                                     first_stage=_first_stage(RunDir(args.resume).config()["train"].get("mine")))
        except (FileNotFoundError, CheckpointError, ValueError, RunInUse) as e:
            parser.exit(2, f"contrastlab train --resume: {e}\n")
        if main_rank:
            print(f"restarting {args.resume} from step 0: it stopped before its first checkpoint" if trainer.restarting
                  else f"resuming {args.resume} at step {trainer.step} of {trainer.total_steps}")
    else:
        method = method_of(parser, args)
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
                from ..train.recipes import build_config
                config = build_config(args.recipe, data=args.data, method=method, seed=args.seed,
                                      hyperparameters=method_keys, **settings)
            else:
                config = TrainConfig(method=method, data=args.data, seed=args.seed, hyperparameters=method_keys,
                                     **settings)
            trainer = Trainer.from_config(config, run, show_progress=not args.quiet,
                                          first_stage=_first_stage(config.mine))
        except (ValueError, FileNotFoundError, FileExistsError, OSError, RunInUse) as e:
            parser.exit(2, f"contrastlab train: {e}\n")
        if distributed.is_main():
            procs = f" in {distributed.world_size()} processes" if distributed.world_size() > 1 else ""
            print(f"training {method} on {args.data}{procs}"
                  f"{f' with recipe {args.recipe}' if args.recipe else ''}; run directory {trainer.run.path}")
            for note in getattr(trainer.data, "notes", ()):
                print(f"  note: {note}")
    from ..train import TrainingDiverged
    from ..train.evaluate import log_eval
    from ..train.tracking import TrackingError
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
    main = distributed.is_main()
    distributed.leave()                               # every rank, after fit's last barrier: a clean exit for all
    if not main:
        return 0
    print(f"trained {trainer.step} steps in {trainer.elapsed / 60:.1f} min; checkpoint {trainer.run.last_checkpoint}")
    if trainer.config.final_eval and not args.no_eval:
        with quiet(args.quiet):
            results = evaluate_run(trainer.run.path, device=trainer.config.device)
        log_eval(trainer.run.path, results)
    return 0
