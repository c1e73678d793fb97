"""Fault points: a process stops itself at a named point of its work, so that tests of killed runs synchronise on
events (a step finished, a checkpoint written) and never race the clock.

Production code calls :func:`point` at the moments worth interrupting; it costs one dictionary look-up unless the
environment variable ``CONTRASTLAB_FAULT`` is set. The variable holds a JSON object or a list of them::

    {"point": "after-step", "at": 24}                     SIGKILL itself once step 24 is done
    {"point": "after-checkpoint", "at": 21, "signal": "SIGSTOP"}
    {"point": "atomic-write", "at": "last.pt"}            after the temporary file is written, before the rename
    {"point": "after-step", "at": 12, "rank": 1}          only the process with RANK=1 (torchrun)
    {"point": "atomic-write", "at": "last.pt", "nth": 3}  at the third match in this process

A rule fires only in a first attempt (``TORCHELASTIC_RESTART_COUNT`` unset or 0) unless it says ``"restart": N``.

Points used: ``run-created`` (run directory written, before planning), ``after-step`` (at: the step count),
``after-update`` (at: the step whose optimizer update just ran, before it is counted), ``after-checkpoint`` (at:
the step saved), ``atomic-write`` (at: the file name).

>>> import os
>>> os.environ.pop(ENV, None) and None
>>> point("after-step", 3)          # no rule: nothing happens
"""
from __future__ import annotations

import json
import os
import signal

__all__ = ["point", "ENV"]

ENV = "CONTRASTLAB_FAULT"
_parsed: tuple[str, list[dict]] | None = None
_matches: dict[int, int] = {}                    # rule index -> matches so far in this process


def _rules() -> list[dict]:
    global _parsed
    text = os.environ.get(ENV, "")
    if _parsed is None or _parsed[0] != text:
        try:
            value = json.loads(text) if text else []
        except json.JSONDecodeError as e:
            raise ValueError(f"{ENV} must be a JSON object or list of objects, got {text!r} ({e})") from None
        rules = value if isinstance(value, list) else [value]
        if not all(isinstance(r, dict) and isinstance(r.get("point"), str) for r in rules):
            raise ValueError(f"{ENV}: every rule must be an object with a string 'point', got {text!r}")
        _parsed = (text, rules)
        _matches.clear()
    return _parsed[1]


def point(name: str, at=None) -> None:
    """Stop this process with the rule's signal (default SIGKILL) if a rule in ``CONTRASTLAB_FAULT`` matches."""
    if ENV not in os.environ:
        return
    for i, rule in enumerate(_rules()):
        if rule["point"] != name or ("at" in rule and rule["at"] != at):
            continue
        if "rank" in rule and int(os.environ.get("RANK", "0")) != int(rule["rank"]):
            continue
        if int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) != int(rule.get("restart", 0)):
            continue
        _matches[i] = _matches.get(i, 0) + 1
        if _matches[i] == int(rule.get("nth", 1)):
            os.kill(os.getpid(), getattr(signal, rule.get("signal", "SIGKILL")))
