"""User image–text data: ``"captions:PATH"``, a folder of images plus a captions file.

The folder holds ``captions.csv`` (a header row with the columns ``file``, ``caption`` and optionally
``language``) or ``captions.jsonl`` (one ``{"file", "caption", "language"?}`` object per line); PATH may also
name the captions file itself. ``file`` is a path relative to the folder and must stay inside it (absolute
paths, ``..`` and symlinks leading out are refused). Rows without a language get ``language`` (default "en").
An image may have several captions: the first per language is kept, the others are counted in ``notes``.

Images are read like ``folder:`` does (Pillow, EXIF orientation), always as RGB; mixed sizes, or an explicit
``size``, are resized shorter side first and centre-cropped to a square (default: the median shorter side, at
most 96). Bad lines (missing or unknown fields, empty captions, paths outside the folder, missing or
unreadable images) are skipped with a warning naming their line numbers; a file where more than half the
lines are bad is refused. The split holds out about 15% of the images by a seeded hash of their file name
(none below 20 images), so it does not depend on the order of the lines.

Example::

    >>> import json, os, tempfile
    >>> from PIL import Image
    >>> from contrastlab.data import load_image_text
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("cat.png", "dog.png"):
    ...     Image.new("RGB", (8, 6), (200, 10, 10)).save(os.path.join(folder, name))
    >>> rows = [{"file": "cat.png", "caption": "a cat"}, {"file": "dog.png", "caption": "un perro", "language": "es"}]
    >>> with open(os.path.join(folder, "captions.jsonl"), "w") as f:
    ...     _ = f.write("\\n".join(json.dumps(r) for r in rows))
    >>> data = load_image_text(f"captions:{folder}")
    >>> data.images.shape, data.ids, data.texts
    (torch.Size([2, 3, 6, 8]), ('cat.png', 'dog.png'), {'en': ['a cat', None], 'es': [None, 'un perro']})
"""

from __future__ import annotations

import csv
import io
import numbers
import os
from pathlib import Path

import numpy as np
import torch

from . import limits
from .decode import IMAGE_SUFFIXES, MAX_AUTO_SIZE, UNREADABLE, decode_file, listing, read_header
from .image_text import ImageTextData, register_image_text_dataset
from .pairs import BadRecord, LineErrors, read_records
from .text import hash_unit

__all__ = ["CAPTION_FILES", "COLUMNS", "load_captions"]

CAPTION_FILES = ("captions.csv", "captions.jsonl")
COLUMNS = ("file", "caption", "language")
TEST_FRACTION = 0.15
MIN_TEST_IMAGES = 20             # fewer captioned images than this: no test split


def _captions_file(path: str | os.PathLike) -> tuple[Path, Path]:
    """(folder, captions file) for a folder or a captions file path."""
    path = Path(os.path.abspath(os.path.expanduser(path)))
    if path.is_file():
        if path.suffix.lower() not in (".csv", ".jsonl"):
            raise ValueError(f"`path` must be a folder or a .csv / .jsonl captions file, got {str(path)!r}")
        return path.parent, path
    if not path.is_dir():
        raise FileNotFoundError(f"captions folder not found: {path}")
    found = [path / name for name in CAPTION_FILES if (path / name).is_file()]
    if len(found) != 1:
        why = "both" if found else "neither"
        raise ValueError(f"{path}: expected exactly one captions file ({' or '.join(CAPTION_FILES)}), found {why}")
    return path, found[0]


def _check_header(file: Path) -> None:
    first = next(csv.reader(io.StringIO(file.read_text(encoding="utf-8-sig"), newline="")), [])
    columns = [c.strip() for c in first]
    for c in columns:
        if c not in COLUMNS:
            raise ValueError(f"{file.name} line 1: unknown column {c!r}; the columns are file, caption and "
                             f"optionally language")
    for c in COLUMNS[:2]:
        if c not in columns:
            raise ValueError(f"{file.name} line 1: missing column {c!r}; the header must name file, caption and "
                             f"optionally language, got {', '.join(map(repr, columns)) or 'nothing'}")


def _text(rec: dict, name: str) -> str:
    value = rec.get(name)
    if value is None:
        raise BadRecord(f"missing field {name!r}")
    if not isinstance(value, str):
        raise BadRecord(f"field {name!r} must be a string, got {type(value).__name__} {value!r}")
    if not value.strip():
        raise BadRecord(f"field {name!r} must be a non-empty string, got {value!r}")
    return value.strip()


def _inside(folder: Path, file: str) -> str:
    """``file`` normalised (posix), refusing anything that is not a path inside ``folder``."""
    norm = os.path.normpath(file)
    real_folder = os.path.realpath(folder)
    if os.path.isabs(file) or norm == ".." or norm.startswith(".." + os.sep) or \
            os.path.commonpath([real_folder, os.path.realpath(folder / norm)]) != real_folder:
        raise BadRecord(f"field 'file' must be a path inside the folder, got {file!r}")
    return Path(norm).as_posix()


def _read_captions(path: str | os.PathLike, *, language: str) -> tuple[Path, dict[str, dict[str, str]],
                                                                       dict[str, list[str]], LineErrors, int, int]:
    """``(folder, captions, lines, errors, total, extra)``: file -> {language: first caption}, file -> the
    line numbers naming it, the bad lines so far, the count of data lines and of extra captions dropped."""
    folder, file = _captions_file(path)
    if file.suffix.lower() == ".csv":
        _check_header(file)
    errors = LineErrors(file.name)
    records, total = read_records(file, errors)
    captions: dict[str, dict[str, str]] = {}
    lines: dict[str, list[str]] = {}
    extra = 0
    for where, rec, from_csv in records:
        if from_csv:
            rec = {k.strip(): v for k, v in rec.items()}
        try:
            unknown = [k for k in rec if k not in COLUMNS]
            if unknown:
                raise BadRecord(f"unknown field {unknown[0]!r}; the fields are file, caption and optionally language")
            name = _inside(folder, _text(rec, "file"))
            caption = _text(rec, "caption")
            lang = language if rec.get("language") in (None, "") else _text(rec, "language")
            if not (folder / name).is_file():
                raise BadRecord(f"file {name!r} not found in {folder}")
        except BadRecord as e:
            errors.add(where, str(e))
            continue
        per_file = captions.setdefault(name, {})
        lines.setdefault(name, []).append(where)
        if lang in per_file:
            extra += 1
        else:
            per_file[lang] = caption
    return folder, captions, lines, errors, total, extra


@register_image_text_dataset("captions", takes_path=True, folders=True, options=("size", "language", "seed"),
                             description="a folder of images with captions.csv / captions.jsonl")
def load_captions(path: str, *, root: str | None = None, size: int | None = None, language: str = "en",
                  seed: int = 0) -> ImageTextData:
    """Read a captioned image folder into :class:`ImageTextData` (see the module docstring for the rules)."""
    if size is not None and (not isinstance(size, numbers.Integral) or isinstance(size, bool) or size < 1):
        raise ValueError(f"`size` must be a positive int or None, got {size!r}")
    if not isinstance(language, str) or not language.strip():
        raise ValueError(f"`language` must be a non-empty str, got {language!r}")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, got {seed!r}")
    folder, captions, lines, errors, total, extra = _read_captions(path, language=language.strip())
    if 2 * len(errors) > total:
        errors.finish(total=total)                                        # raises: more than half are bad
    heads, bad = {}, {}
    for name in captions:
        try:
            heads[name] = read_header(folder / name)
        except UNREADABLE as exc:
            bad[name] = f"{type(exc).__name__}: {exc}"
    sizes = {s for _, s in heads.values()}
    target = size
    if target is None and len(sizes) > 1:
        target = min(MAX_AUTO_SIZE, int(np.median([min(s) for _, s in heads.values()])))
    if target is not None and sizes == {(target, target)}:
        target = None
    if heads:
        side = (target, target) if target is not None else next(iter(sizes))[::-1]     # (H, W)
        limits.check_image_bytes("`size`" if size is not None else f"{folder}: the images", n=len(heads),
                                 channels=3, size=side, setting="`size` (`image_size` in training)")
    pixels = {}
    for name in heads:
        try:
            pixels[name] = decode_file(folder / name, False, target).transpose(2, 0, 1)     # (3, H, W)
        except UNREADABLE as exc:
            bad[name] = f"{type(exc).__name__}: {exc}"
    for name, why in bad.items():
        for where in lines[name]:
            errors.add(where, f"file {name!r} is not a readable image ({why})")
    notes = errors.finish(total=total)                                    # raises when more than half are bad
    ids = [name for name in captions if name not in bad]
    langs = list(dict.fromkeys(lang for name in ids for lang in captions[name]))
    texts = {lang: [captions[name].get(lang) for name in ids] for lang in langs}
    x = np.stack([pixels[name] for name in ids])                                   # (N, 3, H, W)
    notes.insert(0, f"read {len(ids)} images with {sum(len(captions[n]) for n in ids)} captions from {folder}")
    if extra:
        notes.append(f"kept the first caption per image and language; {extra} more were dropped")
    if target is not None:
        notes.append(f"resized to {target}x{target} (shorter side, centre crop, bilinear)")
    named = {(folder / n).resolve() for n in captions}
    loose = [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.resolve() not in named]
    if loose:
        notes.append(f"ignored {len(loose)} image file(s) without a caption: "
                     f"{listing([p.relative_to(folder).as_posix() for p in sorted(loose)])}")
    split = np.zeros(len(ids), dtype=bool)
    if len(ids) < MIN_TEST_IMAGES:
        notes.append(f"no test split: {len(ids)} images (fewer than {MIN_TEST_IMAGES})")
    else:
        score = np.array([hash_unit(name, seed=seed) for name in ids])
        split = score < TEST_FRACTION
        if not split.any():
            split[np.argmin(score)] = True
        if split.all():
            split[np.argmax(score)] = False
        notes.append(f"held out {int(split.sum())} of {len(ids)} images (~{TEST_FRACTION:.0%} by a hash of the "
                     f"file name, seed {seed})")
    return ImageTextData(name=f"captions:{folder}", images=torch.from_numpy(x), texts=texts,
                         split=torch.from_numpy(split), ids=tuple(ids), notes=tuple(notes))
