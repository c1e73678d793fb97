"""Spec strings of the dataset registry (:mod:`contrastlab.data.registry`): finding the entry a spec names, how an
entry is written in messages, and the checks every load call shares.

A spec is a registered name or alias (any case, spaces around ignored), ``"NAME:PATH"`` for a loader that reads user
files, or a bare path whose suffix a loader claims. Entries need ``name`` and ``takes_path`` and may have
``aliases``, ``suffixes`` and ``options``.

>>> from types import SimpleNamespace as S
>>> reg = {"toy": S(name="toy", takes_path=False), "pairs": S(name="pairs", takes_path=True, suffixes=(".jsonl",))}
>>> find(reg, " TOY ")[1], find(reg, "pairs:a.csv")[1], find(reg, "b.JSONL")[1], find(reg, "c.txt")
(None, 'a.csv', 'b.JSONL', None)
>>> forms(reg["pairs"])
'pairs:PATH or PATH.jsonl'
"""
from __future__ import annotations

import os

__all__ = ["find", "forms", "check_spec", "check_root", "check_options"]


def _names(ds) -> tuple[str, ...]:
    return (ds.name, *getattr(ds, "aliases", ()))


def forms(ds) -> str:
    """How a spec names the entry: ``"name (alias a)"``, or ``"name:PATH or PATH.sfx"`` for a loader of paths."""
    aliases = getattr(ds, "aliases", ())
    alias = f" (alias {', '.join(aliases)})" if aliases else ""
    if not ds.takes_path:
        return ds.name + alias
    return " or ".join([f"{ds.name}:PATH", *(f"PATH{s}" for s in getattr(ds, "suffixes", ()))]) + alias


def find(registry: dict, spec: str):
    """``(entry, path or None)`` for `spec`, or None when no entry claims it. Names come first, then ``NAME:PATH``,
    then suffixes; ``"NAME:"`` with no path is a ValueError."""
    key = spec.strip().lower()
    for ds in registry.values():
        if not ds.takes_path and key in _names(ds):
            return ds, None
    prefix, sep, rest = spec.partition(":")
    for ds in registry.values():
        if ds.takes_path and sep and prefix.strip().lower() in _names(ds):
            if not rest:
                raise ValueError(f"`spec` {spec!r} names no path after '{prefix}:'")
            return ds, rest
    for ds in registry.values():
        if ds.takes_path and any(key.endswith(s) for s in getattr(ds, "suffixes", ())):
            return ds, spec
    return None


def check_spec(spec) -> None:
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"`spec` must be a non-empty str, got {spec!r}")


def check_root(root) -> str | None:
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"`root` must be a str path or None, got {type(root).__name__}")
    return None if root is None else os.fspath(root)


def check_options(ds, options: dict) -> None:
    """Every key of `options` must be one the entry's loader declares."""
    unknown = sorted(set(options) - set(getattr(ds, "options", ())))
    if unknown:
        takes = ", ".join(getattr(ds, "options", ())) or "none"
        raise ValueError(f"`{unknown[0]}` is not an option of {ds.kind} {ds.name!r} (its options: {takes})")
