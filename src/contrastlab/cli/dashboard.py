"""The `contrastlab dashboard [RUN_DIR ...] [--index IDX ...]` command: the playground, a live view of run
directories and, with `--index`, an image index's pictures and their nearest neighbours (the dashboard, with its
web server, and faiss are imported when the command runs).

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="contrastlab")
>>> register(parser.add_subparsers(dest="command"), parser)
>>> args = parser.parse_args(["dashboard", "runs/a", "--port", "0", "--index", "idx/a", "--index", "idx/b"])
>>> args.run_dirs, args.port, args.host, args.indexes
([PosixPath('runs/a')], 0, '127.0.0.1', [PosixPath('idx/a'), PosixPath('idx/b')])
>>> parser.parse_args(["dashboard"]).indexes
[]
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["register", "dashboard_command"]


def register(subparsers, top=None) -> None:
    """Add `dashboard` to an argparse subparsers object."""
    dash = subparsers.add_parser("dashboard", help="the live dashboard: the playground and a view of run directories")
    dash.add_argument("run_dirs", nargs="*", type=Path, metavar="RUN_DIR")
    dash.add_argument("--index", dest="indexes", action="append", type=Path, default=[], metavar="IDX",
                      help="an index folder of images (`contrastlab index RUN --images ...`) to browse in the run "
                           "view, with each image's nearest neighbours (repeatable)")
    dash.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    dash.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    dash.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    dash.set_defaults(handler=dashboard_command)


def dashboard_command(args) -> int:
    """Serve the dashboard on `args.run_dirs` (and `args.indexes`) until Ctrl-C."""
    from ..dashboard import dashboard
    return dashboard(args.run_dirs, indexes=args.indexes, host=args.host, port=args.port,
                     open_browser=not args.no_browser)
