"""The `contrastlab` command."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="contrastlab", description="Contrastive representation learning you can see.")
    parser.add_argument("--version", action="version", version=f"contrastlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="compute every loss on real embeddings and print a table")
    demo.add_argument("--batch", type=_positive_int, default=512, help="pairs per batch (default 512, at most 1797)")
    demo.add_argument("--dim", type=_positive_int, default=32, help="embedding size (default 32, at most 64)")
    demo.add_argument("--seed", type=int, default=0)
    sub.add_parser("losses", help="list the registered losses and their papers")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.batch > 1797 or args.dim > 64:
            parser.error(f"--batch must be <= 1797 and --dim <= 64 (the digits data), got {args.batch} and {args.dim}")
        from .demo import run
        return run(batch=args.batch, dim=args.dim, seed=args.seed)
    if args.command == "losses":
        from .losses import LOSSES
        from .losses.registry import INPUT_KINDS
        for name, spec in sorted(LOSSES.items()):
            print(f"{name:<20} {spec.module.__name__:<18} {spec.paper:<40} {INPUT_KINDS[spec.inputs]}")
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
