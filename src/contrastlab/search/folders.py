"""The files of an index folder, written atomically and read back with a clear error for every way they can be
bad; the classes are built from what is read here by `contrastlab.search.store` (`load_index`, `open_index`) and
`VectorIndex.load` (this module knows no index class, so the classes can save themselves through it).

The folder holds `index.faiss` (the faiss index), `docs.jsonl` (one {"id", "text"} per line, in index order) and
`meta.json` (format, dim, count, kind, search parameters, recall, embedder source, build time, contrastlab version,
the size and SHA-256 of the two data files). It is written into a temporary sibling folder and renamed into place,
so a reader sees the old index or the new one, never a mixture. The temporary folders of a writer that was
killed are removed by the next write or load (`contrastlab.search.leftovers`).

>>> import tempfile, pathlib, numpy as np
>>> from contrastlab.search.index import VectorIndex
>>> folder = pathlib.Path(tempfile.mkdtemp()) / "idx"
>>> save_index(VectorIndex.build(np.eye(2), ["a", "b"], texts=["x", "y"]), folder)
>>> faiss_index, ids, texts, meta = read_index(folder)
>>> faiss_index.ntotal, ids, texts, meta["kind"]
(2, ['a', 'b'], ['x', 'y'], 'exact')
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import faiss
import numpy as np

from .kinds import KINDS
from .leftovers import remove_leftovers, stale_leftovers, temporary_folder

__all__ = ["save_index", "read_index", "IndexFolderError", "FORMAT", "SEARCH_FORMAT", "IMAGE_TEXT_FORMAT",
           "save_search_index", "read_search_index", "read_image_text_index", "index_format", "FORMATS"]

FORMAT = "contrastlab-index"                    # a folder of one vector index (a collection's, or a v1 text index)
FORMAT_VERSION = 1
SEARCH_FORMAT = "contrastlab-search-index"      # named collections (format version 2)
SEARCH_FORMAT_VERSION = 2
IMAGE_TEXT_FORMAT = "contrastlab-image-text-index"    # before named collections: images and names (read only)
FORMATS = (SEARCH_FORMAT, FORMAT, IMAGE_TEXT_FORMAT)
INDEX_FILE, DOCS_FILE, META_FILE = "index.faiss", "docs.jsonl", "meta.json"
THUMBS_FILE, THUMBS_INDEX = "thumbnails.bin", "thumbnails.json"
_REQUIRED = ("format", "format_version", "dim", "count", "kind", "params", "files")


class IndexFolderError(ValueError):
    """An index folder that is missing, incomplete, corrupt or not a contrastlab index."""


def _write(path: Path, data) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fingerprint(data) -> dict:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _refuse_foreign(path: Path) -> None:
    if path.exists() and not (path / META_FILE).is_file() and (not path.is_dir() or any(path.iterdir())):
        raise IndexFolderError(f"{path} exists and is not a contrastlab index folder; refusing to replace it")


def _write_folder(path: Path, fill) -> None:
    """Write a folder atomically: `fill(tmp)` writes the files into a temporary sibling, which is then renamed
    into place (an index folder already at `path` is replaced; any other folder is refused)."""
    _refuse_foreign(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)                              # a killed writer's folders: disk space back first
    tmp = temporary_folder(path, "tmp")
    try:
        fill(tmp)
        old = None
        if path.exists():
            old = temporary_folder(path, "old")
            os.replace(path, old / "index")
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    remove_leftovers(path)                              # those kept while `path` was missing


def _write_index_files(index, folder: Path) -> bytes:
    """Write `index.faiss`, `docs.jsonl` and `meta.json` of `index` into the existing `folder`; returns the
    bytes of meta.json (an image-text index keeps their checksum)."""
    blob = memoryview(faiss.serialize_index(index.faiss))
    texts = index.texts if index.texts is not None else [None] * index.count
    docs = "".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n"
                   for i, t in zip(index.ids, texts)).encode()
    _write(folder / INDEX_FILE, blob)
    _write(folder / DOCS_FILE, docs)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **index.meta,
            "has_texts": index.texts is not None,
            "files": {INDEX_FILE: _fingerprint(blob), DOCS_FILE: _fingerprint(docs)}}
    data = (json.dumps(meta, indent=2) + "\n").encode()
    _write(folder / META_FILE, data)
    return data


def save_index(index, path: str | os.PathLike) -> None:
    """Write `index` to the folder `path` (replacing an index folder already there; refusing any other folder)."""
    _write_folder(Path(path), lambda tmp: _write_index_files(index, tmp))


def _check_file(path: Path, name: str, meta: dict) -> bytes:
    file = path / name
    if not file.is_file():
        raise IndexFolderError(f"index folder {path} is incomplete: {name} is missing")
    data = file.read_bytes()
    want = meta["files"].get(name)
    if not isinstance(want, dict):
        raise IndexFolderError(f"{path / META_FILE} has no size and checksum for {name}")
    if len(data) != want.get("bytes"):
        raise IndexFolderError(f"{file} has {len(data)} bytes but meta.json says {want.get('bytes')}: "
                               f"it is truncated or was changed after the index was written")
    if hashlib.sha256(data).hexdigest() != want.get("sha256"):
        raise IndexFolderError(f"{file} does not match the SHA-256 in meta.json: it is corrupt or was changed")
    return data


def _read_meta(path: Path, what: str = "index folder", data: bytes | None = None) -> dict:
    """meta.json of a folder (or its already-read bytes `data`), checked to be a JSON object."""
    if data is None:
        if not path.exists():
            kept = sorted((p / "index" for p in stale_leftovers(path) if p.suffix == ".old" and
                           (p / "index" / META_FILE).is_file()), key=lambda p: p.stat().st_mtime)
            raise IndexFolderError(f"{what} {path} does not exist" + (
                f"; a write of it was interrupted, and the index it was replacing is in {kept[-1]} (move that "
                f"folder to {path} to use it, or write the index again)" if kept else ""))
        if not path.is_dir():
            raise IndexFolderError(f"{path} is a file, not an {what}")
        if not (path / META_FILE).is_file():
            raise IndexFolderError(f"{path} is not a contrastlab index folder: {META_FILE} is missing")
        data = (path / META_FILE).read_bytes()
    try:
        meta = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:          # contrastlab.io.read_json would import torch
        raise IndexFolderError(f"{path / META_FILE} is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise IndexFolderError(f"{path / META_FILE} is not the meta file of a contrastlab index (it holds a JSON "
                               f"{type(meta).__name__}, not an object)")
    return meta


def index_format(path: str | os.PathLike) -> str:
    """The `format` of the index folder `path`: "contrastlab-search-index" (named collections),
    "contrastlab-index" (one vector index: a text index of contrastlab 0.1) or "contrastlab-image-text-index"
    (images and names, contrastlab 0.1); IndexFolderError when it is none of them."""
    path = Path(path)
    fmt = _read_meta(path).get("format")
    if fmt not in FORMATS:
        raise IndexFolderError(f"{path / META_FILE} is not the meta file of a contrastlab index "
                               f"(its 'format' is {fmt!r})")
    return fmt


def read_index(path: str | os.PathLike, *, _meta_bytes: bytes | None = None):
    """Read an index folder written by `save_index`: (faiss index, ids, texts or None, meta) of a `VectorIndex`;
    raises IndexFolderError saying what is wrong."""
    path = Path(path)
    meta = _read_meta(path, data=_meta_bytes)
    if _meta_bytes is None:
        remove_leftovers(path)
    if meta.get("format") in (IMAGE_TEXT_FORMAT, SEARCH_FORMAT):
        raise IndexFolderError(f"{path} is a search index of named collections, not one vector index; open it with "
                               f"`contrastlab.search.open_index`")
    if meta.get("format") != FORMAT:
        raise IndexFolderError(f"{path / META_FILE} is not the meta file of a contrastlab index "
                               f"(its 'format' is {meta.get('format')!r})")
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise IndexFolderError(f"{path / META_FILE} lacks {missing}")
    if meta["format_version"] != FORMAT_VERSION:
        raise IndexFolderError(f"{path} has index format version {meta['format_version']}; this contrastlab "
                               f"reads version {FORMAT_VERSION}")
    if meta["kind"] not in KINDS[1:]:
        raise IndexFolderError(f"{path / META_FILE}: 'kind' must be one of {KINDS[1:]}, got {meta['kind']!r}")
    blob = _check_file(path, INDEX_FILE, meta)
    docs = _check_file(path, DOCS_FILE, meta)
    try:
        index = faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
    except RuntimeError as e:
        raise IndexFolderError(f"{path / INDEX_FILE} cannot be read by faiss: {str(e).splitlines()[0][-200:]}") \
            from None
    ids, texts = [], []
    for n, line in enumerate(docs.decode("utf-8", errors="replace").splitlines(), 1):
        try:
            row = json.loads(line)
            ids.append(row["id"])
            texts.append(row["text"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise IndexFolderError(f"{path / DOCS_FILE} line {n}: not a JSON object with 'id' and 'text'") from None
    if index.d != meta["dim"] or index.ntotal != meta["count"] or len(ids) != meta["count"]:
        raise IndexFolderError(f"{path} is inconsistent: meta.json says {meta['count']} vectors of dimension "
                               f"{meta['dim']}, the faiss index holds {index.ntotal} of dimension {index.d} and "
                               f"{DOCS_FILE} has {len(ids)} documents")
    has_texts = meta.get("has_texts", True)
    meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "files", "has_texts")}
    return index, ids, texts if has_texts else None, meta


# -- search indexes: named collections, each a vector-index folder (plus thumbnails) --------------------------
def save_search_index(index, path: str | os.PathLike) -> None:
    """Write a `SearchIndex` to the folder `path`, atomically:

        INDEX/meta.json                format "contrastlab-search-index" (version 2), what queries it takes, each
                                       collection's modality, size and text field, the index's meta, and the size
                                       and SHA-256 of every other file below
        INDEX/<name>/                  a vector-index folder per collection (index.faiss, docs.jsonl, meta.json),
                                       or `backend.json` for a collection kept in a vector database
        INDEX/<name>/thumbnails.bin    image collections: the PNG thumbnails, back to back
        INDEX/<name>/thumbnails.json   {"offsets": [N + 1 byte offsets into thumbnails.bin]}
    """
    def fill(tmp: Path) -> None:
        files, collections = {}, {}
        for name, c in index.collections.items():
            sub = tmp / name
            sub.mkdir()
            writer = getattr(c.vectors, "write_folder", None)            # a vector database: where it lives
            data = writer(sub) if writer is not None else _write_index_files(c.vectors, sub)
            files[f"{name}/{BACKEND_FILE if writer is not None else META_FILE}"] = _fingerprint(data)
            if c.thumbnails is not None:
                offsets = (json.dumps({"offsets": [int(o) for o in c.thumbnails.offsets]}) + "\n").encode()
                _write(sub / THUMBS_FILE, c.thumbnails.data)
                _write(sub / THUMBS_INDEX, offsets)
                files[f"{name}/{THUMBS_FILE}"] = _fingerprint(c.thumbnails.data)
                files[f"{name}/{THUMBS_INDEX}"] = _fingerprint(offsets)
            collections[name] = {"modality": c.modality, "count": c.count, "text_field": c.text_field,
                                 "thumbnails": c.thumbnails is not None,
                                 "backend": getattr(c.vectors, "backend", "faiss")}
        meta = {"format": SEARCH_FORMAT, "format_version": SEARCH_FORMAT_VERSION, "queries": list(index.queries),
                "dim": index.dim, **index.meta, "collections": collections, "files": files}
        _write(tmp / META_FILE, (json.dumps(meta, indent=2, ensure_ascii=False) + "\n").encode())
    _write_folder(Path(path), fill)


BACKEND_FILE = "backend.json"
_ENTRY = {"modality": ("text", "image"), "text_field": ("text", "label")}


def _thumbnail_parts(path: Path, prefix: str, meta: dict):
    blob = _check_file(path, f"{prefix}{THUMBS_FILE}", meta)
    listing = _check_file(path, f"{prefix}{THUMBS_INDEX}", meta)
    try:
        offsets = json.loads(listing)["offsets"]
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
        raise IndexFolderError(f"{path / prefix / THUMBS_INDEX} is not a JSON object with 'offsets'") from None
    return blob, offsets


def read_search_index(path: str | os.PathLike):
    """Read a folder written by `save_search_index` (every file checked against the checksums in meta.json), or
    one of contrastlab 0.1's formats (a text index; an image-text or image index), as
    (queries, [entry, ...], meta): each entry a dict with "name", "modality", "text_field", "vectors" (the
    `read_index` parts, or ("backend", the backend.json object)) and "thumbnails" ((bytes, offsets) or None).
    Raises IndexFolderError saying what is wrong."""
    path = Path(path)
    meta = _read_meta(path)
    remove_leftovers(path)
    fmt = meta.get("format")
    if fmt == FORMAT:                                     # 0.1's text index: one collection of texts
        parts = read_index(path, _meta_bytes=(path / META_FILE).read_bytes())
        entry = {"name": "texts", "modality": "text", "text_field": "text", "vectors": parts, "thumbnails": None}
        keep = ("embedder", "embed_seconds", "run_step", "data")
        return ("text",), [entry], {k: parts[3][k] for k in keep if k in parts[3]}
    if fmt == IMAGE_TEXT_FORMAT:
        return _read_image_text(path, meta)
    if fmt != SEARCH_FORMAT:
        raise IndexFolderError(f"{path / META_FILE} is not the meta file of a contrastlab index "
                               f"(its 'format' is {fmt!r})")
    missing = [k for k in ("format_version", "queries", "collections", "files") if k not in meta]
    if missing:
        raise IndexFolderError(f"{path / META_FILE} lacks {missing}")
    if meta["format_version"] != SEARCH_FORMAT_VERSION:
        raise IndexFolderError(f"{path} has search-index format version {meta['format_version']}; this "
                               f"contrastlab reads version {SEARCH_FORMAT_VERSION}: rebuild it with "
                               f"`contrastlab index`")
    if not isinstance(meta["files"], dict) or not isinstance(meta["collections"], dict) or not meta["collections"]:
        raise IndexFolderError(f"{path / META_FILE}: 'files' and 'collections' must be objects (and 'collections' "
                               f"not empty); rebuild the index with `contrastlab index`")
    entries = []
    for name, info in meta["collections"].items():
        if not isinstance(info, dict) or any(info.get(k) not in ok for k, ok in _ENTRY.items()) \
                or not isinstance(name, str) or "/" in name or name.startswith("."):
            raise IndexFolderError(f"{path / META_FILE}: collection {name!r} is not described by a modality "
                                   f"({', '.join(_ENTRY['modality'])}) and a text field ({', '.join(_ENTRY['text_field'])})")
        if info.get("backend", "faiss") == "faiss":
            sub = _check_file(path, f"{name}/{META_FILE}", meta)   # the collection's meta.json, checked here ...
            vectors = read_index(path / name, _meta_bytes=sub)       # ... and its files against it
        else:
            raw = _check_file(path, f"{name}/{BACKEND_FILE}", meta)
            try:
                vectors = ("backend", json.loads(raw))
            except (ValueError, UnicodeDecodeError):
                raise IndexFolderError(f"{path / name / BACKEND_FILE} is not valid JSON") from None
        thumbs = _thumbnail_parts(path, f"{name}/", meta) if info.get("thumbnails") else None
        entries.append({"name": name, "modality": info["modality"], "text_field": info["text_field"],
                        "vectors": vectors, "thumbnails": thumbs})
    rest = {k: v for k, v in meta.items()
            if k not in ("format", "format_version", "files", "collections", "queries", "dim")}
    return tuple(meta["queries"]), entries, rest


def _read_image_text(path: Path, meta: dict):
    """contrastlab 0.1's image-text (or image-only) index as `read_search_index` parts."""
    missing = [k for k in ("format_version", "collections", "files") if k not in meta]
    if missing:
        raise IndexFolderError(f"{path / META_FILE} lacks {missing}")
    if meta["format_version"] != FORMAT_VERSION:
        raise IndexFolderError(f"{path} has index format version {meta['format_version']}; this contrastlab "
                               f"reads version {FORMAT_VERSION}")
    if not isinstance(meta["files"], dict):
        raise IndexFolderError(f"{path / META_FILE}: 'files' must be an object of sizes and checksums")
    targets = meta["collections"]
    if not isinstance(targets, dict) or "images" not in targets or not set(targets) <= {"images", "names"}:
        raise IndexFolderError(f"{path / META_FILE}: 'collections' must name 'images' and optionally 'names', got "
                               f"{targets!r}; rebuild the index with `contrastlab index`")
    labels = meta.get("modality") == "image"
    entries = []
    for target in ("images", "names"):
        if target not in targets:
            continue
        sub = _check_file(path, f"{target}/{META_FILE}", meta)
        entries.append({"name": target, "modality": "image" if target == "images" else "text",
                        "text_field": "label" if labels else "text",
                        "vectors": read_index(path / target, _meta_bytes=sub),
                        "thumbnails": _thumbnail_parts(path, "", meta) if target == "images" else None})
    queries = ("image",) if labels else ("text", "image")
    rest = {k: v for k, v in meta.items() if k not in ("format", "format_version", "files", "collections")}
    return queries, entries, rest


def read_image_text_index(path: str | os.PathLike):
    """Kept for callers of contrastlab 0.1: `read_search_index` of an image-text index folder."""
    return read_search_index(path)
