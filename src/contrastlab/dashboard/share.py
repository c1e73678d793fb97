"""Playground links: the settings, seed and anchor of a run as a URL query, and back.

A link holds the controls that differ from their defaults (the seed always), the anchor, and
optionally a step: opening it restarts the playground from the seed's initial embeddings under those
settings, so the same link gives the same run (and, with ``step``, the same frame, paused there).
Anything in a link that is malformed or out of range is ignored, with a notice saying what and why,
and the default is used instead.

Example::

    >>> from contrastlab.dashboard.share import parse_link, settings_query
    >>> from contrastlab.dashboard.controls import defaults
    >>> settings_query(defaults() | {"temperature": 0.05, "seed": 3}, anchor=7)
    'temperature=0.05&seed=3&anchor=7'
    >>> link = parse_link("?temperature=0.05&seed=3&anchor=7&step=50")
    >>> link.settings["temperature"], link.anchor, link.step, link.notices
    (0.05, 7, 50, [])
    >>> parse_link("temperature=9").notices
    ['ignored temperature=9: `temperature` must be a number in [0.01, 2], got 9; using the default 0.1']
"""

from __future__ import annotations

import math
import urllib.parse
from dataclasses import dataclass, field

from .controls import CONTROLS, defaults, validate_value

__all__ = ["Link", "parse_link", "settings_query", "MAX_LINK_CHARS", "MAX_LINK_STEPS"]

#: Longest query accepted (characters); a longer one is ignored as a whole.
MAX_LINK_CHARS = 2000
#: Largest ``step`` a link may ask for (the engine takes them when the link opens).
MAX_LINK_STEPS = 1000
_EXTRA = ("anchor", "step")


@dataclass
class Link:
    """A parsed link: complete settings (defaults where the link says nothing usable), anchor, step
    (None: run on), and the notices about what was ignored."""
    settings: dict
    anchor: int = 0
    step: int | None = None
    notices: list = field(default_factory=list)


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)


def settings_query(settings: dict, *, anchor: int = 0, step: int | None = None) -> str:
    """The query string of a link to these settings (non-default controls, the seed always), anchor and step."""
    base = defaults()
    pairs = [(name, _text(settings[name])) for name in CONTROLS
             if name in settings and (name == "seed" or settings[name] != base[name])]
    if anchor:
        pairs.append(("anchor", str(anchor)))
    if step is not None:
        pairs.append(("step", str(step)))
    return urllib.parse.urlencode(pairs)


def _parse_value(name: str, text: str):
    """A control's value from its link text (then checked by :func:`validate_value`)."""
    c = CONTROLS[name]
    if c.kind == "bool":
        if text not in ("true", "false"):
            raise ValueError(f"`{name}` must be true or false, got {text!r}")
        return text == "true"
    if c.kind == "choice":
        for option in c.options:
            if text == _text(option):
                return option
        raise ValueError(f"`{name}` must be one of {list(c.options)}, got {text!r}")
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"`{name}` must be a number, got {text!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"`{name}` must be a finite number, got {text!r}")
    return int(number) if c.kind == "int" and number.is_integer() else number


def _int(name: str, text: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"`{name}` must be an integer in [{low}, {high}], got {text!r}")
    return int(text)


def parse_link(query: str) -> Link:
    """Settings, anchor and step from a link's query (``?`` optional); bad parts are ignored with a notice."""
    link = Link(settings=defaults())
    query = query[1:] if query.startswith("?") else query
    if len(query) > MAX_LINK_CHARS:
        link.notices.append(f"ignored the link's settings: at most {MAX_LINK_CHARS} characters, got {len(query)}")
        return link
    seen, extra = set(), {}
    for key, text in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key in seen:
            link.notices.append(f"ignored a second {key}={text}: each setting may appear once")
            continue
        seen.add(key)
        if key in _EXTRA:
            extra[key] = text
            continue
        if key not in CONTROLS:
            link.notices.append(f"ignored unknown setting {key!r}; known settings: {sorted([*CONTROLS, *_EXTRA])}")
            continue
        try:
            link.settings[key] = validate_value(key, _parse_value(key, text))
        except (TypeError, ValueError) as e:
            link.notices.append(f"ignored {key}={text}: {e}; using the default {_text(CONTROLS[key].default)}")
    s = link.settings
    if 2 * s["batch_size"] > s["points"]:
        fallback = min(CONTROLS["batch_size"].default, s["points"] // 2)
        link.notices.append(f"ignored batch_size={s['batch_size']}: it must be at most points / 2 = "
                            f"{s['points'] // 2}; using {fallback}")
        s["batch_size"] = fallback
    for key, high, attr in (("anchor", s["points"] - 1, "anchor"), ("step", MAX_LINK_STEPS, "step")):
        if key in extra:
            try:
                setattr(link, attr, _int(key, extra[key], 0, high))
            except ValueError as e:
                link.notices.append(f"ignored {key}={extra[key]}: {e}")
    return link
