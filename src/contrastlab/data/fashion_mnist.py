"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, "Fashion-MNIST: a Novel Image Dataset for
Benchmarking Machine Learning Algorithms"): 60k + 10k grayscale 28x28 images of 10 clothing classes.

The four gzip IDX files are looked for in ``root``, ``$CONTRASTLAB_DATA/fashion-mnist``, the Debian
package's folder (``apt-get install dataset-fashion-mnist``) and the cache; when none has them they
are downloaded from the official URLs into the cache (MD5-checked, atomic). Decoded arrays are
cached as .npy next to the cache so later loads skip the gunzip.

Example::

    >>> from contrastlab.data import load_images
    >>> data = load_images("fashion-mnist")                     # doctest: +SKIP
    >>> data.x.shape, data.x_test.shape, data.classes[0]        # doctest: +SKIP
    ((60000, 1, 28, 28), (10000, 1, 28, 28), 'T-shirt/top')
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np
import torch

from .cache import atomic_write, cache_dir
from .idx import read_idx
from .images import ImageData
from .registry import register_dataset

__all__ = ["CLASSES", "FILES", "URL", "find_fashion_mnist", "load_fashion_mnist"]

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")
FILES = {"x": "train-images-idx3-ubyte.gz", "y": "train-labels-idx1-ubyte.gz",
         "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
#: The official download location (github.com/zalandoresearch/fashion-mnist); an S3 website
#: endpoint, which serves plain http only.
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
#: MD5 of the official .gz files, from the project's README.
MD5 = {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
       "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
       "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
       "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
APT_HINT = "apt-get install dataset-fashion-mnist"
_SIZES = {"x": 60000, "x_test": 10000}


def _candidates(root: str | None) -> list[tuple[str, Path | None]]:
    """(label, folder) in search order; folder None when the source is not configured."""
    env = os.environ.get("CONTRASTLAB_DATA")
    return [("root", None if root is None else Path(root)),
            ("$CONTRASTLAB_DATA/fashion-mnist", None if not env else Path(env, "fashion-mnist")),
            ("Debian dataset-fashion-mnist", SYSTEM_DIR),
            ("cache", cache_dir("fashion-mnist"))]


def _missing(folder: Path) -> list[str]:
    return [f for f in FILES.values() if not (folder / f).is_file()]


def _download(folder: Path) -> None:
    """Fetch each missing file into ``folder`` (atomic, MD5-checked)."""
    from tqdm.auto import tqdm

    for name in _missing(folder):
        url = URL + name
        md5 = hashlib.md5()
        with urllib.request.urlopen(url, timeout=60) as resp, atomic_write(folder / name) as out, \
                tqdm(total=int(resp.headers.get("Content-Length") or 0) or None, unit="B", unit_scale=True,
                     desc=f"downloading {name}", disable=None, leave=False) as bar:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                md5.update(chunk)
                bar.update(len(chunk))
            if md5.hexdigest() != MD5[name]:
                raise ValueError(f"downloaded {url} has MD5 {md5.hexdigest()}, expected {MD5[name]} "
                                 f"(damaged or changed upstream); nothing was saved")


def find_fashion_mnist(root: str | None = None, *, download: bool = True) -> Path:
    """The folder holding the four .gz files, searched in order; downloads into the cache if none has them.

    Raises:
        FileNotFoundError: naming every folder looked in, the URL and the apt package, when the
            files are nowhere and the download fails (or ``download=False``).
    """
    looked = []
    for label, folder in _candidates(root):
        if folder is None:
            looked.append(f"{label}: not set")
            continue
        missing = _missing(folder)
        if not missing:
            return folder
        looked.append(f"{label} {folder}: " + ("no such folder" if not folder.is_dir()
                                               else f"missing {', '.join(missing)}"))
    target = cache_dir("fashion-mnist")
    reason = "downloading is switched off (download=False)"
    if download:
        try:
            _download(target)
            return target
        except (OSError, ValueError) as exc:
            reason = f"download from {URL} failed: {type(exc).__name__}: {exc}"
    raise FileNotFoundError(
        "Fashion-MNIST not found. Looked in:\n  " + "\n  ".join(looked) + f"\n{reason}.\n"
        f"Fix: `{APT_HINT}` (Debian/Ubuntu), or put the four files ({', '.join(FILES.values())}) "
        f"in one of the folders above, or download them from {URL} and pass `root=`.")


def _decode(path: Path) -> np.ndarray:
    """read_idx with a best-effort .npy cache keyed by the source's path, size and mtime."""
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    cached = cache_dir("fashion-mnist", "decoded", f"{path.name.removesuffix('.gz')}-{key}.npy")
    with contextlib.suppress(OSError, ValueError, EOFError):      # absent or damaged: decode again
        return np.load(cached, allow_pickle=False)
    try:
        arr = read_idx(path)
    except ValueError as exc:
        raise ValueError(f"{exc}. The Fashion-MNIST file is damaged: replace it (`{APT_HINT} --reinstall`, "
                         f"or delete it and let it download again)") from None
    with contextlib.suppress(OSError):
        with atomic_write(cached) as f:
            np.save(f, arr, allow_pickle=False)
    return arr


def _check(key: str, path: Path, arr: np.ndarray, n: int) -> None:
    want = (n, 28, 28) if key.startswith("x") else (n,)
    if arr.dtype != np.uint8 or arr.shape != want:
        raise ValueError(f"{path}: Fashion-MNIST `{key}` must be uint8 of shape {want}, "
                         f"got {arr.dtype} of shape {arr.shape}")
    if key.startswith("y") and int(arr.max()) >= len(CLASSES):
        raise ValueError(f"{path}: Fashion-MNIST labels must be in [0, 10), got {int(arr.max())}")


@register_dataset("fashion-mnist", aliases=("fmnist",), description="Fashion-MNIST, 60k+10k 28x28 gray, 10 classes")
def load_fashion_mnist(path: str | None = None, *, root: str | None = None,
                       image_size: int | None = None) -> ImageData:
    """Fashion-MNIST as :class:`ImageData`: x (60000, 1, 28, 28), x_test (10000, 1, 28, 28), 10 classes.

    ``image_size`` is applied by :func:`contrastlab.data.load_images`; it is ignored here.
    """
    folder = find_fashion_mnist(root)
    arrays = {}
    for key, name in FILES.items():
        arr = _decode(folder / name)
        _check(key, folder / name, arr, _SIZES[key.replace("y", "x")])
        arrays[key] = arr
    t = torch.from_numpy
    return ImageData("fashion-mnist", t(arrays["x"])[:, None], t(arrays["y"].astype(np.int64)),
                     t(arrays["x_test"])[:, None], t(arrays["y_test"].astype(np.int64)), CLASSES,
                     notes=(f"loaded from {folder}",))
