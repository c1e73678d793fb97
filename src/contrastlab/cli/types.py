"""Every argparse type of the `contrastlab` command, in one place: each turns a command-line string into a value
or raises `argparse.ArgumentTypeError` with a message that names the rule and the value got (argparse prefixes it
with the option, e.g. "argument --steps: must be a positive integer, got 0").

>>> positive_int("3"), positive_float("0.5"), seed("7"), fractions("0.01,0.1")
(3, 0.5, 7, (0.01, 0.1))
>>> positive_int("0")
Traceback (most recent call last):
    ...
argparse.ArgumentTypeError: must be a positive integer, got 0
"""
from __future__ import annotations

import argparse

__all__ = ["positive_int", "positive_float", "seed", "fractions", "trackers"]


def positive_int(text: str) -> int:
    """An integer > 0: `--steps`, `--nproc`, `-k`, `--batch-size` ...

    >>> positive_int("12")
    12
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0: `--minutes`, `--epochs`, `--knn-temperature`.

    >>> positive_float("1.5")
    1.5
    >>> positive_float("inf")
    Traceback (most recent call last):
        ...
    argparse.ArgumentTypeError: must be a finite positive number, got inf
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    if value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite positive number, got {value}")
    return value


def seed(text: str) -> int:
    """A random seed: an int in [0, 2**63-1] (what `torch.manual_seed` takes).

    >>> seed("0")
    0
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int in [0, 2**63-1], got {text!r}") from None
    if not 0 <= value <= 2 ** 63 - 1:
        raise argparse.ArgumentTypeError(f"must be an int in [0, 2**63-1], got {value}")
    return value


def fractions(text: str) -> tuple[float, ...]:
    """Comma-separated fractions in (0, 1]: `eval --label-fractions 0.01,0.1`.

    >>> fractions("0.5,1")
    (0.5, 1.0)
    """
    try:
        values = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated fractions such as 0.01,0.1, got {text!r}") from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"every fraction must be in (0, 1], got {text!r}")
    return values


def trackers(text: str) -> tuple[str, ...]:
    """Tracking tools for `train --log`, checked by `contrastlab.train.tracking.parse_trackers` (imported only when
    `--log` is given).

    >>> trackers("tensorboard")
    ('tensorboard',)
    """
    from ..train.tracking import parse_trackers
    try:
        return parse_trackers(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
