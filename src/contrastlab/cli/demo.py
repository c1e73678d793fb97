"""The `contrastlab demo` command: train SimCLR on Fashion-MNIST for a few minutes in a child process while this
process serves the dashboard on the run and the playground (`--no-dashboard`: only train and evaluate).

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="contrastlab")
>>> register(parser.add_subparsers(dest="command"), parser)
>>> args = parser.parse_args(["demo", "--minutes", "0.5", "--no-browser"])
>>> args.minutes, args.no_browser, args.port
(0.5, True, 8765)
"""
from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

from .types import positive_float

__all__ = ["DEMO_MINUTES", "register", "demo_command"]

DEMO_MINUTES = 3.0


def register(subparsers, top) -> None:
    """Add `demo` to an argparse subparsers object; `top`, the `contrastlab` parser, parses the training command
    that `--no-dashboard` runs in this process."""
    demo = subparsers.add_parser("demo", help=f"train SimCLR on Fashion-MNIST for {DEMO_MINUTES:g} minutes, evaluate "
                                              f"it, and watch it live in the dashboard next to the playground")
    demo.add_argument("--minutes", type=positive_float, default=DEMO_MINUTES)
    demo.add_argument("--run", type=Path, help="run directory (default: runs/demo-<time>)")
    demo.add_argument("--no-dashboard", action="store_true", help="only train and evaluate (no server)")
    demo.add_argument("--port", type=int, default=8765, help="dashboard port (0: any free port)")
    demo.add_argument("--host", default="127.0.0.1", help="dashboard address (default 127.0.0.1: this machine only)")
    demo.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    demo.set_defaults(handler=functools.partial(demo_command, parser=top))


def demo_command(args, *, parser) -> int:
    """Train in a child process (its own threads, its own progress bar) while this process serves the dashboard
    on the run and the playground; Ctrl-C stops both, and the run can be resumed."""
    import subprocess
    run = args.run or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    cmd = [sys.executable, "-m", "contrastlab", "train", "simclr", "--data", "fashion-mnist", "--minutes",
           str(args.minutes), "--run", str(run)]
    if args.no_dashboard:
        train = parser.parse_args(cmd[3:])
        return train.handler(train)
    from ..dashboard import dashboard
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
