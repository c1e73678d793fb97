"""Image–text data (CLIP-style pairs) as one container, :class:`ImageTextData`, loaded by spec with
:func:`load_image_text`.

Every example is an image with zero or more texts, one per language (the emoji's name in Spanish, a
user's caption), optional category labels for zero-shot evaluation, and a fixed train/test flag. The
split is the loader's: test images and their texts never occur in training.

A spec is a registered name (``"emoji"``) or ``"NAME:PATH"`` for loaders that read user files
(``"captions:photos/"``). Loaders register themselves in the one dataset registry
(:data:`contrastlab.data.registry.DATASETS`, ``modality="image_text"``); options they declare
(``size=``, ``languages=``) are passed through as keywords.

Example::

    >>> import torch
    >>> data = ImageTextData(name="toy", images=torch.zeros(3, 3, 4, 4, dtype=torch.uint8),
    ...                      texts={"en": ["a cat", "a dog", None], "es": ["un gato", None, "un pez"]},
    ...                      split=torch.tensor([False, False, True]), ids=("cat.png", "dog.png", "fish.png"))
    >>> len(data), data.test_indices().tolist(), data.missing_texts()
    (2, [2], {'en': 1, 'es': 1})
    >>> data.pairs("es")
    (tensor([0]), ['un gato'])
    >>> "emoji" in list_image_text_datasets() and "captions" in list_image_text_datasets()
    True
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from . import registry
from .images import _ids, _images, _label_range

__all__ = ["ImageTextData", "register_image_text_dataset", "list_image_text_datasets", "load_image_text"]


def _names(name: str, value) -> tuple[str, ...]:
    if not isinstance(value, tuple) or not all(isinstance(c, str) and c for c in value):
        raise TypeError(f"`{name}` must be a tuple of non-empty str, got {value!r}")
    if not value or len(set(value)) != len(value):
        raise ValueError(f"`{name}` must be non-empty and unique, got {value!r}")
    return value


@dataclass(frozen=True)
class ImageTextData:
    """Images with texts in one or more languages, a fixed split, and optional category labels.

    Shape:
        images: (N, 3, H, W) uint8 RGB. texts[lang]: N entries, str or None (no text in that language).
        labels, sublabels: (N,) int64. split: (N,) bool, True = test. ids: N unique str.

    Indices are into all N examples; :meth:`train_indices` / :meth:`test_indices` select the sides and
    ``len(data)`` counts the training examples. Labels are optional (user captions have none); a label
    tensor needs its names (``classes`` for ``labels``, ``subclasses`` for ``sublabels``).
    """

    name: str                                      # "emoji", "captions:/path"
    images: torch.Tensor                           # (N, 3, H, W) uint8
    texts: dict[str, list[str | None]]             # language -> N texts (None: no text in that language)
    split: torch.Tensor                            # (N,) bool, True = test
    ids: tuple[str, ...]                           # the emoji characters, or file names relative to the folder
    labels: torch.Tensor | None = None             # (N,) int64 in [0, len(classes)), e.g. Unicode emoji group
    sublabels: torch.Tensor | None = None          # (N,) int64 in [0, len(subclasses)), e.g. emoji subgroup
    classes: tuple[str, ...] | None = None
    subclasses: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()

    modality = "image_text"                        # (not a field) what kind of data this is; see ImageData

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` must be a non-empty str, got {self.name!r}")
        images = _images("images", self.images)
        n, c = images.shape[:2]
        if c != 3:
            raise ValueError(f"`images` must be RGB, shape (N, 3, H, W), got C={c} in shape {tuple(images.shape)}")
        if not isinstance(self.texts, dict) or not self.texts:
            raise TypeError(f"`texts` must be a non-empty dict language -> list of {n} str/None, got {self.texts!r}")
        texts = {}
        for lang, values in self.texts.items():
            if not isinstance(lang, str) or not lang:
                raise TypeError(f"`texts` keys must be non-empty str (languages), got {lang!r}")
            if not isinstance(values, (list, tuple)) or len(values) != n:
                got = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
                raise ValueError(f"`texts[{lang!r}]` must be a list of N = {n} entries like `images`, got {got}")
            for i, v in enumerate(values):
                if v is not None and not isinstance(v, str):
                    raise TypeError(f"`texts[{lang!r}][{i}]` must be a str or None, got {type(v).__name__} {v!r}")
            texts[lang] = list(values)
        if not torch.is_tensor(self.split) or self.split.dtype != torch.bool or tuple(self.split.shape) != (n,):
            got = (f"dtype {self.split.dtype} shape {tuple(self.split.shape)}" if torch.is_tensor(self.split)
                   else type(self.split).__name__)
            raise ValueError(f"`split` must be a bool tensor of shape (N,) = ({n},), True = test, got {got}")
        if not isinstance(self.ids, tuple) or len(self.ids) != n or not all(isinstance(i, str) for i in self.ids):
            got = f"{len(self.ids)} entries" if isinstance(self.ids, tuple) else type(self.ids).__name__
            raise ValueError(f"`ids` must be a tuple of N = {n} str, got {got}")
        if len(set(self.ids)) != n:
            seen: set[str] = set()
            dup = next(i for i in self.ids if i in seen or seen.add(i))
            raise ValueError(f"`ids` must be unique, got {dup!r} twice")
        fix = {"images": images, "texts": texts, "split": self.split.contiguous()}
        for key, names_key in (("labels", "classes"), ("sublabels", "subclasses")):
            value, names = getattr(self, key), getattr(self, names_key)
            if (value is None) != (names is None):
                raise ValueError(f"`{key}` and `{names_key}` must be given together, got "
                                 f"{type(value).__name__} and {type(names).__name__}")
            if value is not None:
                fix[key] = _ids(key, value, n, "images")
                _label_range(key, fix[key], len(_names(names_key, names)))
        if not isinstance(self.notes, tuple) or not all(isinstance(s, str) for s in self.notes):
            raise TypeError(f"`notes` must be a tuple of str, got {self.notes!r}")
        for key, value in fix.items():
            object.__setattr__(self, key, value)

    def __len__(self) -> int:
        return int((~self.split).sum())

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.texts)

    def train_indices(self) -> torch.Tensor:
        """(N_train,) int64, ascending."""
        return torch.nonzero(~self.split).flatten()

    def test_indices(self) -> torch.Tensor:
        """(N_test,) int64, ascending."""
        return torch.nonzero(self.split).flatten()

    def missing_texts(self) -> dict[str, int]:
        """How many examples lack a text (None or blank) in each language."""
        return {lang: sum(1 for t in values if t is None or not t.strip()) for lang, values in self.texts.items()}

    def pairs(self, language: str, *, test: bool = False) -> tuple[torch.Tensor, list[str]]:
        """``(indices, texts)``: the training (or test) examples that have a text in ``language``.

        Shape: indices (P,) int64 into ``images``; texts: P str.
        """
        if language not in self.texts:
            raise ValueError(f"`language` must be one of {', '.join(self.texts)}, got {language!r}")
        side = self.test_indices() if test else self.train_indices()
        values = self.texts[language]
        keep = [int(i) for i in side if values[i] is not None and values[i].strip()]
        return torch.tensor(keep, dtype=torch.int64), [values[i] for i in keep]

    def __repr__(self) -> str:
        labels = "" if self.classes is None else f", classes={len(self.classes)}"
        return (f"ImageTextData(name={self.name!r}, images={tuple(self.images.shape)}, train={len(self)}, "
                f"test={int(self.split.sum())}, languages={len(self.texts)}{labels})")


# ---- in the registry ---------------------------------------------------------------------------------------


def register_image_text_dataset(name: str, *, takes_path: bool = False, options: tuple[str, ...] = (),
                                folders: bool = False, description: str = ""):
    """:func:`~contrastlab.data.registry.register_dataset` with ``modality="image_text"``.

    A named loader is called as ``loader(*, root, **options)``, a ``takes_path`` one as ``loader(path, *, root,
    **options)``.
    """
    return registry.register_dataset(name, modality="image_text", takes_path=takes_path, options=options,
                                     folders=folders, description=description)


def list_image_text_datasets() -> list[str]:
    """Registered image–text dataset names."""
    return registry.list_datasets("image_text")


def load_image_text(spec: str, *, root: str | os.PathLike | None = None, **options) -> ImageTextData:
    """Load image–text data by spec: ``"emoji"`` (options ``size``, ``languages``, ``skin_tones``) or
    ``"captions:PATH"`` (a folder of images with captions.csv / captions.jsonl; options ``size``, ``language``).

    Args:
        spec: what to load; see :func:`list_image_text_datasets` and the module docstring.
        root: folder that named datasets' source files are looked for in first (the emoji font, emoji-test.txt).
        **options: loader options.

    Returns:
        :class:`ImageTextData`; ``notes`` says how it was made (skipped files, the split).
    """
    ds, path, root = registry.check_load(spec, root, options, "image_text")
    return ds.loader(root=root, **options) if path is None else ds.loader(path, root=root, **options)
