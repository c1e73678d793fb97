"""The Milvus side of `contrastlab.search.milvus`: where a collection lives, connections (milvus-lite's embedded
server shut down when its last user closes), which collections contrastlab wrote, their schema, and rows written
and read in batches.

>>> check_uri("http://milvus.example:19530")
('http://milvus.example:19530', None)
>>> check_uri("/data/milvus.db")
('/data/milvus.db', '/data/milvus.db')
>>> check_name("docs")
'docs'

A collection holds one row per document: `pk` (INT64 primary key, the position 0..N-1), `doc_id` (VARCHAR), `text`
(VARCHAR, only if there are texts) and `vector` (FLOAT_VECTOR). Its properties hold `contrastlab.format`
(the marker that contrastlab wrote it), `contrastlab.format_version`, `contrastlab.state` (building or complete)
and `contrastlab.meta` (the JSON meta).
"""
from __future__ import annotations

import os
import re
import threading
from typing import Callable

import numpy as np

__all__ = ["MilvusCollectionError", "FORMAT", "FORMAT_VERSION", "check_uri", "check_name", "check_strings",
           "connect", "release", "owned_properties", "make_schema", "insert_rows", "read_docs"]

FORMAT = "contrastlab-milvus-collection"
FORMAT_VERSION = "1"
MAX_VARCHAR = 65535                 # bytes in a Milvus VARCHAR field
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
_LITE_USERS: dict[str, int] = {}    # milvus-lite data path -> open connections using its embedded server
_LITE_LOCK = threading.Lock()


class MilvusCollectionError(ValueError):
    """A Milvus collection that is missing, unfinished, inconsistent or not written by contrastlab."""


def check_uri(uri) -> tuple[str, str | None]:
    """(uri as a string, the absolute milvus-lite path or None for a server)."""
    text = os.fspath(uri) if isinstance(uri, (str, os.PathLike)) else None
    if text and re.match(r"^https?://[^/\s]+", text):
        return text, None
    if text and text.endswith(".db"):
        return text, os.path.abspath(text)
    raise ValueError(f"`uri` must be a milvus-lite path ending in .db or an http(s):// Milvus server URI, got {uri!r}")


def check_name(name) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith("__building"):
        raise ValueError("`name` must be a Milvus collection name (a letter or _, then letters, digits or _, at "
                         f"most 200 characters, not ending in __building), got {name!r}")
    return name


def check_strings(name: str, values, n: int) -> list[str]:
    """`values` as a list of n strings that fit a VARCHAR field (`ids`: non-empty ones)."""
    if not isinstance(values, (list, tuple)) or len(values) != n:
        raise ValueError(f"`{name}` must be a list with one entry per vector ({n}), got "
                         f"{len(values) if isinstance(values, (list, tuple)) else type(values).__name__}")
    for i, v in enumerate(values):
        if not isinstance(v, str) or (name == "ids" and not v):
            raise ValueError(f"`{name}[{i}]` must be a {'non-empty ' if name == 'ids' else ''}string, got {v!r}")
        if len(v) * 4 > MAX_VARCHAR and len(v.encode("utf-8")) > MAX_VARCHAR:
            raise ValueError(f"`{name}[{i}]` is {len(v.encode('utf-8'))} bytes in UTF-8; a Milvus VARCHAR field "
                             f"holds at most {MAX_VARCHAR}")
    return list(values)


def connect(uri: str, token: str | None, lite: str | None):
    """A MilvusClient for `uri` (MilvusCollectionError if it cannot connect); pair each with `release`."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException
    try:
        client = MilvusClient(uri=uri, token=token or "")
    except MilvusException as e:
        hint = " (a milvus-lite database can be open in one process at a time)" if lite is not None else ""
        raise MilvusCollectionError(f"cannot connect to Milvus at {uri}: {e.message}{hint}") from None
    if lite is not None:
        with _LITE_LOCK:
            _LITE_USERS[lite] = _LITE_USERS.get(lite, 0) + 1
    return client


def release(client, lite: str | None) -> None:
    """Close `client`; the last one of a milvus-lite database also stops its embedded server."""
    client.close()
    if lite is None:
        return
    with _LITE_LOCK:
        _LITE_USERS[lite] -= 1
        last = _LITE_USERS[lite] == 0
        if last:
            del _LITE_USERS[lite]
    if last:
        from milvus_lite.server_manager import server_manager_instance
        server_manager_instance.release_server(lite)


def owned_properties(client, name: str) -> dict | None:
    """The properties of collection `name` if it exists; MilvusCollectionError if contrastlab did not write it."""
    if not client.has_collection(name):
        return None
    props = client.describe_collection(name).get("properties") or {}
    if props.get("contrastlab.format") != FORMAT:
        raise MilvusCollectionError(f"collection {name!r} was not written by contrastlab (its properties have no "
                                    f"contrastlab.format={FORMAT}); refusing to replace or read it")
    return props


def make_schema(d: int, with_texts: bool):
    from pymilvus import DataType, MilvusClient
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                        description=f"{FORMAT} {FORMAT_VERSION}")
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=MAX_VARCHAR)
    if with_texts:
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=d)
    return schema


def insert_rows(client, name: str, x: np.ndarray, ids: list[str], texts: list[str] | None, batch_bytes: int,
                say: Callable[[str], None]) -> None:
    """Insert rows in batches of about `batch_bytes`. Shape: x (N, D)."""
    batch, size = [], 0
    for i in range(len(ids)):
        row = {"pk": i, "doc_id": ids[i], "vector": x[i].tolist()}
        size += 4 * x.shape[1] + len(ids[i]) + 16
        if texts is not None:
            row["text"] = texts[i]
            size += len(texts[i])
        batch.append(row)
        if size >= batch_bytes or i == len(ids) - 1:
            client.insert(name, batch)
            say(f"inserted {i + 1}/{len(ids)} rows")
            batch, size = [], 0


def read_docs(client, name: str, count: int, with_texts: bool, step: int = 10_000):
    """The ids (and texts) of rows 0..count-1, in order; MilvusCollectionError if the rows are not those."""
    ids, texts = [None] * count, ([None] * count if with_texts else None)
    fields = ["pk", "doc_id"] + (["text"] if with_texts else [])
    seen = 0
    for a in range(0, count, step):
        for r in client.query(name, filter=f"pk >= {a} and pk < {min(a + step, count)}", output_fields=fields,
                              limit=min(step, count - a)):
            p = int(r["pk"])
            ids[p] = r["doc_id"]
            if with_texts:
                texts[p] = r["text"]
            seen += 1
    stats = int(client.get_collection_stats(name)["row_count"])
    if seen != count or stats != count:
        raise MilvusCollectionError(f"collection {name!r} holds {stats} rows but its contrastlab meta says {count}")
    return ids, texts
