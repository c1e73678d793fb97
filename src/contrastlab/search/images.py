"""Search over an image run (SimCLR, BYOL, ... on images): image queries find similar images of the run's data.

`load_image_run_embedder(RUN)` gives the run's evaluation feature (the encoder's h, not the projection head) with
`prepare_query_image(bytes)`: a PNG / JPEG query brought to the run's (C, H, W) -- resized when its size differs
(and saying so), refused when it is a colour image for a grayscale run. `contrastlab index RUN --images SPEC --out
INDEX` embeds a dataset's images with it into an index of one collection, "images" (labels: the class names when
the data has them; a PNG thumbnail each; see `contrastlab.search.indexing.index_run`).

>>> from contrastlab.search.multimodal import encode_png
>>> embedder = ImageQueryEmbedder.__new__(ImageQueryEmbedder)         # only the query decoding, no model
>>> embedder.image_shape, embedder.max_pixels = (1, 4, 4), 1 << 20
>>> pixels, notes = embedder.prepare_query_image(encode_png(np.full((3, 8, 8), 7, np.uint8)))
>>> pixels.shape, int(pixels.max()), notes[0][:37]
((1, 4, 4), 7, 'the image was resized from 8x8 to 4x4')
"""
from __future__ import annotations

import numpy as np

from ..runs.embedders import ImageEmbedder
from .multimodal import MAX_IMAGE_PIXELS, ImageDecodeError, decode_image, fit_image

__all__ = ["ImageQueryEmbedder", "load_image_run_embedder", "GRAY_TOLERANCE"]

#: A colour (RGB) query is taken as grayscale by a 1-channel run when its channels differ by at most this much
#: anywhere (JPEG's chroma noise on a gray picture), else refused.
GRAY_TOLERANCE = 8


class ImageQueryEmbedder(ImageEmbedder):
    """An image run's evaluation feature (see `ImageEmbedder`) plus the decoding of query images.

    `step`: the checkpoint step the weights come from (an index records it; a query to an index built from
    another step of the run is refused, see `contrastlab.search.querying.open_for_queries`)."""

    def __init__(self, method, *, image_shape: tuple[int, int, int], source: str, step: int | None = None,
                 max_pixels: int = MAX_IMAGE_PIXELS):
        super().__init__(method, image_shape=image_shape, source=source)
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
            raise ValueError(f"`max_pixels` must be a positive int, got {max_pixels!r}")
        self.step, self.max_pixels = step, max_pixels

    def prepare_query_image(self, data: bytes) -> tuple[np.ndarray, list[str]]:
        """PNG / JPEG bytes -> ((C, H, W) uint8 at the run's shape, notes). A different size is resized (shorter
        side scaled, centre crop: how `load_images(..., image_size=)` resizes) and a note says so; a colour image
        for a 1-channel run is an ImageDecodeError (422); too many pixels a 413 (see `decode_image`)."""
        im = decode_image(data, max_pixels=self.max_pixels)
        c, h, w = self.image_shape
        notes = []
        if im.size != (w, h):
            notes.append(f"the image was resized from {im.size[0]}x{im.size[1]} to {w}x{h} pixels (the run's "
                         f"image size): shorter side scaled, centre crop")
        rgb = fit_image(im, (h, w), fit="crop", resample="bilinear")                     # (3, H, W)
        if c == 3:
            return rgb, notes
        spread = int((rgb.max(0).astype(np.int16) - rgb.min(0)).max())
        if spread > GRAY_TOLERANCE:
            raise ImageDecodeError(f"is a colour image (3 channels, differing by up to {spread} levels) but the run "
                                   f"takes 1-channel (grayscale) images: convert it to grayscale first")
        gray = np.rint(rgb.astype(np.float32).mean(0, keepdims=True)).astype(np.uint8)   # (1, H, W)
        return gray, notes

    def prepare_image(self, data: bytes) -> np.ndarray:
        """`prepare_query_image` without the notes. Shape: -> (C, H, W) uint8."""
        return self.prepare_query_image(data)[0]


def load_image_run_embedder(run_dir) -> ImageQueryEmbedder:
    """The evaluation feature of an image run (`contrastlab.runs.load_run`, on the CPU), ready for queries."""
    from ..devices import CPU
    from ..runs import load_run
    run = load_run(run_dir, device=CPU)
    if run.modality != "image":
        raise ValueError(f"{run.path} is not an image run (its modality is {run.modality!r})")
    base = run.embedder()                                                  # an ImageEmbedder
    return ImageQueryEmbedder(run.method, image_shape=base.image_shape, source=base.source, step=run.step)
