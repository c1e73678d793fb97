"""Images from WebDataset tar shards: ``"shards:PATTERN"``, read by random access so runs resume exactly.

PATTERN is a brace pattern (``data/train-{000000..000009}.tar``, expanded as WebDataset expands shard URLs) or a
glob (``data/*.tar``), or both (several joined by ``::``); shards are read in the order the pattern lists them (a glob's matches sorted). The
members of a shard are grouped into samples by WebDataset's conventions: the key ``__key__`` is the member's path
without its extensions, the extension (lower-cased) names the field. A sample's image is its ``jpg``, ``jpeg``,
``png``, ``webp`` or ``bmp`` member (the first of these when it has several); its optional label is its ``cls``
member (an int), else ``json`` (a class name or int, or ``{"label": ...}``), else ``txt`` (a class name). Labels are
all or none: class names sorted become codes 0..K-1 (as folder classes), ints keep their order (names "0", "1", ...).

WebDataset's own pipeline reads shards sequentially; training reads a seeded permutation of indices (and a resumed
run starts mid-epoch), so the shards are indexed once: the offset and size of every member, from the tar headers,
then an image's bytes are read with one seek. Shards must be uncompressed tar files. Images are decoded as
``folder:`` decodes them (gray only when every image is, one size, resized shorter side then centre crop, bilinear);
unreadable images are skipped and listed in ``notes``, more than half is an error. The shards hold one pattern's
samples with no split of their own: a labelled set gets a stratified 1/6 test split (seed 0), as folders do (to
train on ``train-*`` and test on ``test-*`` shards, evaluate a second run on the other pattern).

Example::

    >>> import io, os, tempfile
    >>> import webdataset as wds
    >>> from PIL import Image
    >>> from contrastlab.data import load_images
    >>> root = tempfile.mkdtemp()
    >>> for s in range(2):
    ...     with wds.TarWriter(os.path.join(root, f"train-{s:02d}.tar")) as sink:
    ...         for i in range(6):
    ...             png = io.BytesIO()
    ...             Image.new("RGB", (10, 12), (i, 0, 0)).save(png, format="PNG")
    ...             _ = sink.write({"__key__": f"{s}-{i:03d}", "png": png.getvalue(), "cls": i % 2})
    >>> data = load_images(f"shards:{root}/train-{{00..01}}.tar")
    >>> data.classes, data.x.shape, data.x_test.shape, data.x[0, :, 0, 0].tolist()
    (('0', '1'), torch.Size([10, 3, 12, 10]), torch.Size([2, 3, 12, 10]), [0, 0, 0])
    >>> data.notes[0]
    '2 shards, 12 samples'
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import tarfile

import numpy as np
from .encoded import load_encoded
from .images import ImageData
from .registry import register_dataset
from .split import remap_labels

__all__ = ["load_shards", "ShardStore", "expand_pattern", "IMAGE_EXTENSIONS", "LABEL_EXTENSIONS"]

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp")      # a sample's image member, first found
LABEL_EXTENSIONS = ("cls", "json", "txt")                     # a sample's label member, first found
_GLOB = frozenset("*?[")
MAX_OPEN = 64                                                # shard files one process keeps open


def expand_pattern(pattern: str) -> list[str]:
    """The shard files ``pattern`` names: braces expanded (WebDataset's expansion), then globs matched (sorted).

    >>> import tempfile, os
    >>> root = tempfile.mkdtemp()
    >>> for name in ("a-0.tar", "a-1.tar", "b-0.tar"):
    ...     open(os.path.join(root, name), "wb").close()
    >>> [os.path.basename(p) for p in expand_pattern(os.path.join(root, "a-{0..1}.tar"))]
    ['a-0.tar', 'a-1.tar']
    >>> [os.path.basename(p) for p in expand_pattern(os.path.join(root, "*-0.tar"))]
    ['a-0.tar', 'b-0.tar']
    """
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError(f"`shards:PATTERN` needs a pattern of tar files (e.g. 'data/train-{{000..009}}.tar' or "
                         f"'data/*.tar'), got {pattern!r}")
    from webdataset.shardlists import expand_urls         # imported on use: `import contrastlab.data` stays light

    files, missing = [], []
    for name in expand_urls(os.path.expanduser(pattern)):
        if _GLOB & set(name):
            files.extend(sorted(p for p in glob.glob(name) if os.path.isfile(p)))
        elif os.path.isfile(name):
            files.append(name)
        else:
            missing.append(name)
    if not files:
        raise FileNotFoundError(f"shards:{pattern}: the pattern matches no file (braces expand WebDataset-style, "
                                f"'*' and '?' glob; e.g. 'data/train-{{000000..000009}}.tar')")
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise FileNotFoundError(f"shards:{pattern}: {len(missing)} of the {len(missing) + len(files)} shards the "
                                f"pattern names do not exist: {', '.join(missing[:3])}{more}")
    seen, out = set(), []
    for f in files:                                       # a shard named twice (overlapping globs) is read once
        if os.path.abspath(f) not in seen:
            seen.add(os.path.abspath(f))
            out.append(f)
    return out


def _members(path: str, shard: int):
    """WebDataset's file records for one shard: regular members' names, with (shard, offset, size) as their data."""
    from webdataset.tariterators import meta_prefix, meta_suffix

    try:
        tar = tarfile.open(path, mode="r:")               # uncompressed only: a member is read by one seek
    except tarfile.ReadError as e:
        raise ValueError(f"{path}: not an uncompressed tar file ({e}); shards must be plain .tar files (a "
                         f"compressed shard cannot be read by seeking)") from None
    with tar:
        for m in tar:
            name = m.name
            if not m.isreg() or ("/" not in name and name.startswith(meta_prefix) and name.endswith(meta_suffix)):
                continue
            yield {"fname": name, "data": (shard, m.offset_data, m.size), "__url__": path}
    yield {}                                              # end of shard: no sample spans two shards


class ShardStore:
    """The image member of every sample of some shards, read by offset. File handles open lazily in each process
    (DataLoader workers fork: a handle shared with the parent would share its file position)."""

    def __init__(self, name: str, shards: list[str], where: np.ndarray, names: list[str]):
        self.name, self.shards = name, shards
        self.where = where                                # (N, 3) int64: shard, offset, size
        self.names = names                                # "key.ext" of each image member
        self._files: dict[int, object] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.where)

    def __getstate__(self):
        return {**self.__dict__, "_files": {}, "_pid": None}

    def _file(self, shard: int):
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        f = self._files.get(shard)
        if f is None:
            if len(self._files) >= MAX_OPEN:                  # many shards: keep a bounded number of handles
                self.close()
            f = self._files[shard] = open(self.shards[shard], "rb")
        return f

    def read_at(self, shard: int, offset: int, size: int) -> bytes:
        f = self._file(shard)
        f.seek(offset)
        data = f.read(size)
        if len(data) != size:
            raise OSError(f"{self.shards[shard]} ended {size - len(data)} bytes early (the shard was truncated)")
        return data

    def read(self, item: int) -> bytes:
        shard, offset, size = (int(v) for v in self.where[item])
        return self.read_at(shard, offset, size)

    def describe(self, item: int) -> str:
        return f"{self.shards[int(self.where[item, 0])]}: {self.names[item]}"

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for p in self.shards:
            st = os.stat(p)
            h.update(f"\0{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
        return h.hexdigest()

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}


def _label(store: ShardStore, sample: dict):
    """The sample's label (int or str), or None when it has no label member."""
    for ext in LABEL_EXTENSIONS:
        if ext in sample:
            text = store.read_at(*sample[ext]).decode("utf-8").strip()
            if ext == "cls":
                try:
                    return int(text)
                except ValueError:
                    raise ValueError(f"{store.shards[sample[ext][0]]}: {sample['__key__']}.cls must hold an int "
                                     f"class, got {text[:40]!r}") from None
            if ext == "txt":
                return text
            try:
                value = json.loads(text)
            except ValueError as e:
                raise ValueError(f"{store.shards[sample[ext][0]]}: {sample['__key__']}.json is not valid JSON "
                                 f"({e})") from None
            if isinstance(value, dict):
                value = value.get("label")
            if isinstance(value, bool) or not isinstance(value, (int, str, type(None))):
                raise ValueError(f"{store.shards[sample[ext][0]]}: {sample['__key__']}.json must hold a class name, "
                                 f"an int or {{\"label\": ...}}, got {text[:60]!r}")
            return value
    return None


def _index(pattern: str, shards: list[str]):
    """(store, labels per sample or None, notes): every sample with an image member, in shard order."""
    from webdataset.tariterators import group_by_keys     # WebDataset's grouping of members into samples

    where, names, samples, notes = [], [], [], []
    no_image, several = [], 0
    store = ShardStore(f"shards:{pattern}", shards, np.zeros((0, 3), np.int64), [])
    for s, path in enumerate(shards):
        try:
            for sample in group_by_keys(_members(path, s)):
                found = [e for e in IMAGE_EXTENSIONS if e in sample]
                if not found:
                    no_image.append(f"{path}: {sample['__key__']}")
                    continue
                several += len(found) > 1
                where.append(sample[found[0]])
                names.append(f"{sample['__key__']}.{found[0]}")
                samples.append(sample)
        except ValueError as e:
            if "duplicate file name" in str(e):
                raise ValueError(f"{path}: two members of one sample have the same extension "
                                 f"({str(e).split(':')[0]}); a WebDataset sample holds one member per extension") \
                    from None
            raise
    if not where:
        raise ValueError(f"shards:{pattern}: no images found in {len(shards)} shard{'s' if len(shards) > 1 else ''}; "
                         f"expected samples with a {'/'.join('.' + e for e in IMAGE_EXTENSIONS)} member")
    store.where, store.names = np.asarray(where, dtype=np.int64).reshape(-1, 3), names
    if no_image:
        more = f" and {len(no_image) - 10} more" if len(no_image) > 10 else ""
        notes.append(f"ignored {len(no_image)} sample(s) without an image member: {', '.join(no_image[:10])}{more}")
    if several:
        notes.append(f"{several} sample(s) hold more than one image member: used the first of "
                     f"{', '.join(IMAGE_EXTENSIONS)}")
    labels = [_label(store, sample) for sample in samples]
    store.close()
    return store, labels, notes


def _codes(store: ShardStore, labels: list):
    """(codes, class names) or (None, None): all samples labelled, or none; ints or names, not both."""
    have = [v is not None for v in labels]
    if not any(have):
        return None, None
    if not all(have):
        i, j = have.index(False), have.index(True)
        raise ValueError(f"{store.name}: labels are all or none, but {store.describe(i)} has no label member "
                         f"(.cls, .json or .txt) while {store.describe(j)} has one ({labels[j]!r})")
    kinds = {type(v) for v in labels}
    if len(kinds) > 1:
        i, j = next(i for i, v in enumerate(labels) if isinstance(v, int)), \
            next(j for j, v in enumerate(labels) if isinstance(v, str))
        raise ValueError(f"{store.name}: labels must all be ints or all class names, got the int {labels[i]!r} for "
                         f"{store.describe(i)} and the name {labels[j]!r} for {store.describe(j)}")
    return remap_labels(np.asarray(labels))


@register_dataset("shards", takes_path=True, streams=True,
                  description="WebDataset tar shards, a brace pattern or glob (images + .cls/.json/.txt labels)")
def load_shards(path: str, *, root: str | None = None, image_size: int | None = None,
                stream: bool | None = None) -> ImageData:
    """Read WebDataset shards into :class:`ImageData` (see the module docstring for the rules).

    ``stream``: None (default) keeps the images in memory when they fit and streams them otherwise; True always
    streams (decoded by DataLoader workers while training); False always loads. Both give the same images.
    """
    if stream is not None and not isinstance(stream, bool):
        raise ValueError(f"`stream` must be True, False or None (stream when the images do not fit), got {stream!r}")
    shards = expand_pattern(path)
    store, labels, notes = _index(path, shards)
    codes, classes = _codes(store, labels)
    notes.insert(0, f"{len(shards)} shard{'s' if len(shards) > 1 else ''}, {len(store)} samples")
    return load_encoded(store, labels=codes, classes=classes, image_size=image_size, stream=stream,
                        notes=tuple(notes), kind="shards")
