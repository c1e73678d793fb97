"""What the three dataset registries (images, text, image-text) share: name checks and spec resolution.

A spec is a registered name or alias, ``"NAME:PATH"`` for a loader that reads user files, or a bare path whose
suffix a loader claims. Registry entries need ``name`` and ``takes_path`` and may have ``aliases`` and ``suffixes``.

>>> from types import SimpleNamespace as S
>>> reg = {"toy": S(name="toy", takes_path=False), "pairs": S(name="pairs", takes_path=True, suffixes=(".jsonl",))}
>>> resolve(reg, "TOY", kind="dataset")[1], resolve(reg, "pairs:a.csv", kind="dataset")[1]
(None, 'a.csv')
>>> resolve(reg, "b.jsonl", kind="dataset")[1]
'b.jsonl'
"""
from __future__ import annotations

import os

__all__ = ["check_new_names", "resolve", "check_load"]


def _names(ds) -> tuple[str, ...]:
    return (ds.name, *getattr(ds, "aliases", ()))


def _forms(ds) -> list[str]:
    """How a spec names the dataset: its names, or "NAME:PATH" and "PATH<suffix>" for loaders that take a path."""
    if not ds.takes_path:
        return list(_names(ds))
    return [f"{ds.name}:PATH", *(f"PATH{s}" for s in getattr(ds, "suffixes", ()))]


def check_new_names(registry: dict, name: str, aliases=(), suffixes=(), *, kind: str) -> None:
    """Raise when a name or alias is malformed or taken, or a suffix is malformed."""
    taken = {n for ds in registry.values() for n in _names(ds)}
    for n in (name, *aliases):
        if not isinstance(n, str) or not n or n != n.lower() or ":" in n:
            raise ValueError(f"{kind} names must be non-empty lower-case str without ':', got {n!r}")
        if n in taken:
            raise ValueError(f"a {kind} named {n!r} is already registered")
    for s in suffixes:
        if not isinstance(s, str) or not s.startswith(".") or s != s.lower():
            raise ValueError(f"`suffixes` must be lower-case str starting with '.', got {s!r}")


def resolve(registry: dict, spec: str, *, kind: str, folder_prefix: str | None = None):
    """(registry entry, path or None) for `spec`; a clear error listing what is registered otherwise."""
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
    names = ", ".join(ds.name + (f" (alias {', '.join(ds.aliases)})" if getattr(ds, "aliases", ()) else "")
                      for ds in sorted(registry.values(), key=lambda d: d.name))
    forms = " | ".join(f for ds in registry.values() for f in _forms(ds))
    hint = ""
    if folder_prefix and os.path.isdir(os.path.expanduser(spec)):
        hint = f"; {spec!r} is a folder: did you mean '{folder_prefix}:{spec}'?"
    raise ValueError(f"`spec` must name a registered {kind} or use a path form, got {spec!r}; "
                     f"registered: {names}; accepted forms: {forms}{hint}")


def check_load(registry: dict, spec, root, options: dict, *, kind: str, folder_prefix: str | None = None):
    """Validate a load call's `spec`, `root` and loader `options`; returns (registry entry, path or None, root)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"`spec` must be a non-empty str, got {spec!r}")
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"`root` must be a str path or None, got {type(root).__name__}")
    ds, path = resolve(registry, spec, kind=kind, folder_prefix=folder_prefix)
    unknown = sorted(set(options) - set(getattr(ds, "options", ())))
    if unknown:
        takes = ", ".join(getattr(ds, "options", ())) or "none"
        raise ValueError(f"`{unknown[0]}` is not an option of {kind} {ds.name!r} (its options: {takes})")
    return ds, path, None if root is None else os.fspath(root)
