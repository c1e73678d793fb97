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
