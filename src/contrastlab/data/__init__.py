"""Datasets of every modality in one registry (:data:`DATASETS`, listed by ``contrastlab datasets``); images as one
container, :class:`ImageData`, loaded by spec with :func:`load_images`.

Example::

    >>> from contrastlab.data import load_images, probe_subset, thumbnails
    >>> data = load_images("digits")
    >>> data.x.shape, data.num_classes
    (torch.Size([1348, 1, 8, 8]), 10)
    >>> thumbnails(data.x_test[probe_subset(data, size=16)], size=16).shape
    torch.Size([16, 16, 16, 1])
"""

from .images import ImageData
from .registry import (DATASETS, MODALITIES, DatasetSpec, dataset_modality, list_datasets, load_images,
                       register_dataset, resolve_dataset)
from .idx import read_idx, write_idx
from .resize import fit_square, thumbnails
from .split import probe_subset
# Loaders register themselves on import; the order here is the order specs are matched against them.
from .fashion_mnist import load_fashion_mnist
from .digits import load_digits
from .npz import load_npz
from .folder import load_folder
from .shards import load_shards
from .hf_images import load_hf_images

__all__ = [
    "ImageData", "load_images", "register_dataset", "list_datasets", "DATASETS", "DatasetSpec", "MODALITIES",
    "resolve_dataset", "dataset_modality",
    "probe_subset", "thumbnails", "fit_square", "read_idx", "write_idx",
    "load_fashion_mnist", "load_digits", "load_npz", "load_folder",
]

# Text datasets: containers, load_text, and loaders that register themselves (modality "text") on import.
from .text import PairData, RetrievalData, TextData
from .text_registry import list_text_datasets, load_text, register_text_dataset
from .pairs import read_clicks, read_corpus, read_pairs
from .verses import load_verses
from .wordnet import load_wordnet, load_wordnet_synonyms, read_synsets
from .interactions import load_movielens_100k, popularity_ranking, read_interactions

__all__ += [
    "PairData", "RetrievalData", "TextData", "load_text", "register_text_dataset", "list_text_datasets",
    "read_pairs", "read_clicks", "read_corpus", "load_verses", "load_wordnet",
    "load_wordnet_synonyms", "read_synsets", "read_interactions", "popularity_ranking", "load_movielens_100k",
]

# Image-text data: the container, load_image_text, and loaders that register themselves on import.
from .image_text import ImageTextData, list_image_text_datasets, load_image_text, register_image_text_dataset
from .emoji import load_emoji
from .captions import load_captions

__all__ += [
    "ImageTextData", "load_image_text", "register_image_text_dataset", "list_image_text_datasets",
    "load_emoji", "load_captions",
]

# Sequence (time-series) data: the container, load_sequences, and loaders that register themselves on import.
from .sequences import SequenceData, list_sequence_datasets, load_sequences, register_sequence_dataset
from .ucr import load_ucr, read_ts
from .series_files import load_series_file

__all__ += ["SequenceData", "load_sequences", "register_sequence_dataset", "list_sequence_datasets", "load_ucr",
            "read_ts", "load_series_file"]
