"""The `contrastlab` command: train, resume, evaluate, index and search, export, serve, the dashboard, the demo,
and the lists of datasets, losses and recipes.

Each command family is a module of its own that registers its options with cheap imports only and sets
`args.handler`; the handler imports the heavy modules (the trainer, faiss, the dashboard) when its command runs.
Every argparse type lives in `contrastlab.cli.types`.

>>> args = build_parser().parse_args(["train", "simclr", "--steps", "3"])
>>> args.command, args.method, args.steps
('train', 'simclr', 3)
"""
from __future__ import annotations

import argparse

from .. import __version__
from . import dashboard, demo, evaluate, export, info, search, train

__all__ = ["build_parser", "main"]

#: The command families, in the order `contrastlab --help` lists their commands.
FAMILIES = (demo, dashboard, train, evaluate, search, export, info)


def build_parser() -> argparse.ArgumentParser:
    """The `contrastlab` parser with every command (this imports neither faiss, the dashboard, transformers nor
    torch.distributed.run)."""
    parser = argparse.ArgumentParser(prog="contrastlab", description="Contrastive representation learning you can see.")
    parser.add_argument("--version", action="version", version=f"contrastlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for family in FAMILIES:
        family.register(sub, parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `contrastlab ARGV...` and return its exit status (no command: print the help, 0)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0
    return args.handler(args)
