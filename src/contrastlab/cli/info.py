"""The listing commands: `contrastlab losses` (and `losses --demo`), `contrastlab datasets` and
`contrastlab recipes` (each registry is imported when its command runs).

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="contrastlab")
>>> register(parser.add_subparsers(dest="command"), parser)
>>> args = parser.parse_args(["losses", "--demo", "--batch", "64"])
>>> args.demo, args.batch, args.dim, args.seed
(True, 64, 32, 0)
"""
from __future__ import annotations

import functools

from .types import positive_int, seed

__all__ = ["register", "datasets_command", "recipes_command", "losses_command"]


def register(subparsers, top) -> None:
    """Add `datasets`, `recipes` and `losses` to an argparse subparsers object; usage errors are reported by
    `top`, the `contrastlab` parser."""
    from ..methods import list_methods
    datasets = subparsers.add_parser("datasets", help="list the registered datasets: modality, spec forms, "
                                                      "description")
    datasets.add_argument("--modality", help="only the datasets of this modality (image, text, image_text, ...)")
    datasets.set_defaults(handler=functools.partial(datasets_command, parser=top))

    recipes = subparsers.add_parser("recipes", help="list the training recipes (--recipe NAME) and what each follows")
    recipes.add_argument("method", nargs="?", choices=list_methods(), help="only this method's recipes")
    recipes.set_defaults(handler=recipes_command)

    losses = subparsers.add_parser("losses", help="list the registered losses and their papers; --demo runs each")
    losses.add_argument("--demo", action="store_true", help="every loss on real embeddings, matched vs shuffled")
    losses.add_argument("--batch", type=positive_int, default=512, help="pairs per batch (default 512, at most 1797)")
    losses.add_argument("--dim", type=positive_int, default=32, help="embedding size (default 32, at most 64)")
    losses.add_argument("--seed", type=seed, default=0)
    losses.set_defaults(handler=functools.partial(losses_command, parser=top))


def datasets_command(args, *, parser) -> int:
    """The dataset registry as a table: modality, spec forms, description."""
    from ..data.registry import datasets_table           # importing contrastlab.data registers every loader
    try:
        rows = [("modality", "spec", "description"), *datasets_table(args.modality)]
    except ValueError as e:
        parser.error(f"--modality: {e}")
    w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
    for modality, forms, description in rows:
        print(f"{modality:<{w0}}  {forms:<{w1}}  {description}")
    return 0


def recipes_command(args) -> int:
    """The training recipes (of `args.method`, or all) and what each follows."""
    from ..train.recipes import list_recipes, recipe
    for name in list_recipes(args.method):
        print(f"{name:<12} {recipe(name).description}")
    return 0


def losses_command(args, *, parser) -> int:
    """The loss registry (name, module, paper, inputs); `--demo`: every loss on real embeddings."""
    if args.demo:
        if args.batch > 1797 or args.dim > 64:
            parser.error(f"--batch must be <= 1797 and --dim <= 64 (the digits data), got {args.batch} and "
                         f"{args.dim}")
        from ..demo import run
        return run(batch=args.batch, dim=args.dim, seed=args.seed)
    from ..losses import LOSSES
    from ..losses.registry import INPUT_KINDS
    for name, spec in sorted(LOSSES.items()):
        print(f"{name:<20} {spec.module.__name__:<18} {spec.paper:<40} {INPUT_KINDS[spec.inputs]}")
    return 0
