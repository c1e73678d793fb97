"""Image datasets as one container, :class:`ImageData`, loaded by spec with :func:`load_images`.

Example::

    >>> from contrastlab.data import load_images, probe_subset, thumbnails
    >>> data = load_images("digits")
    >>> data.x.shape, data.num_classes
    (torch.Size([1348, 1, 8, 8]), 10)
    >>> thumbnails(data.x_test[probe_subset(data, size=16)], size=16).shape
    torch.Size([16, 16, 16, 1])
"""

from .images import ImageData
from .registry import DATASETS, DatasetSpec, list_datasets, load_images, register_dataset
from .idx import read_idx, write_idx
from .resize import fit_square, thumbnails
from .split import probe_subset
# Loaders register themselves on import; the order here is the order `load_images` tries them.
from .fashion_mnist import load_fashion_mnist
from .digits import load_digits
from .npz import load_npz
from .folder import load_folder

__all__ = [
    "ImageData", "load_images", "register_dataset", "list_datasets", "DATASETS", "DatasetSpec",
    "probe_subset", "thumbnails", "fit_square", "read_idx", "write_idx",
    "load_fashion_mnist", "load_digits", "load_npz", "load_folder",
]

# Text datasets: containers, the text registry, and loaders that register themselves on import.
from .text import PairData, RetrievalData, TextData
from .text_registry import TEXT_DATASETS, TextDatasetSpec, list_text_datasets, load_text, register_text_dataset
from .pairs import read_clicks, read_corpus, read_pairs
from .verses import load_verses
from .wordnet import load_wordnet, load_wordnet_synonyms, read_synsets
from .interactions import load_movielens_100k, popularity_ranking, read_interactions

__all__ += [
    "PairData", "RetrievalData", "TextData", "load_text", "register_text_dataset", "list_text_datasets",
    "TEXT_DATASETS", "TextDatasetSpec", "read_pairs", "read_clicks", "read_corpus", "load_verses", "load_wordnet",
    "load_wordnet_synonyms", "read_synsets", "read_interactions", "popularity_ranking", "load_movielens_100k",
]

# Image-text data: the container, its registry, and loaders that register themselves on import.
from .image_text import (IMAGE_TEXT_DATASETS, ImageTextData, ImageTextDatasetSpec, list_image_text_datasets,
                         load_image_text, register_image_text_dataset)
from .emoji import load_emoji
from .captions import load_captions

__all__ += [
    "ImageTextData", "load_image_text", "register_image_text_dataset", "list_image_text_datasets",
    "IMAGE_TEXT_DATASETS", "ImageTextDatasetSpec", "load_emoji", "load_captions",
]
