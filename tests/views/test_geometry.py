"""Resized crop + flip against Pillow's float resize (with a box) and torch's affine grid_sample."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from contrastlab.views import resized_crop, sample_crops


def pil_crop(img, box, size, flip):
    """float64 numpy (H, W) -> Pillow 'F' image resized from the float box (top, left, h, w), BILINEAR."""
    top, left, h, w = box
    out = Image.fromarray(img.astype(np.float32), mode="F").resize(
        (size[1], size[0]), Image.BILINEAR, box=(left, top, left + w, top + h))
    out = np.asarray(out, dtype=np.float64)
    return out[:, ::-1] if flip else out


def random_boxes(b, h, w, g, min_frac=0.1):
    fh = min_frac + (1 - min_frac) * torch.rand(b, generator=g, dtype=torch.float64)
    fw = min_frac + (1 - min_frac) * torch.rand(b, generator=g, dtype=torch.float64)
    bh, bw = fh * h, fw * w
    top = torch.rand(b, generator=g, dtype=torch.float64) * (h - bh)
    left = torch.rand(b, generator=g, dtype=torch.float64) * (w - bw)
    return torch.stack([top, left, bh, bw], dim=1)


@pytest.mark.parametrize("size", [(12, 10), (24, 30), (5, 4), (12, 31), (8, 6)])
def test_matches_pillow(size):
    """Enlarging is bilinear, shrinking an antialiasing triangle filter: both as Pillow's BILINEAR."""
    g = torch.Generator().manual_seed(sum(size))
    x = torch.rand(6, 2, 12, 10, generator=g, dtype=torch.float64)
    boxes = random_boxes(6, 12, 10, g)
    boxes[0] = torch.tensor([0.0, 0.0, 12.0, 10.0])
    flip = torch.tensor([False, True, False, True, True, False])
    out = resized_crop(x, boxes, size=size, flip=flip)
    assert out.shape == (6, 2, *size) and out.dtype == torch.float64
    for i in range(6):
        for c in range(2):
            ref = pil_crop(x[i, c].numpy(), boxes[i].tolist(), size, bool(flip[i]))
            np.testing.assert_allclose(out[i, c].numpy(), ref, atol=2e-6)


def test_matches_grid_sample_when_enlarging():
    """One affine grid per sample (crop + flip), bilinear, border padding, align_corners=False."""
    g = torch.Generator().manual_seed(0)
    b, h, w = 8, 16, 20
    x = torch.rand(b, 3, h, w, generator=g, dtype=torch.float64)
    boxes = random_boxes(b, h, w, g)
    flip = torch.rand(b, generator=g) < 0.5
    top, left, bh, bw = boxes.unbind(1)
    theta = torch.zeros(b, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = torch.where(flip, -bw / w, bw / w)
    theta[:, 0, 2] = (2 * left + bw) / w - 1
    theta[:, 1, 1] = bh / h
    theta[:, 1, 2] = (2 * top + bh) / h - 1
    grid = F.affine_grid(theta, (b, 3, h, w), align_corners=False)
    ref = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(resized_crop(x, boxes, flip=flip), ref, atol=1e-10, rtol=0)


def test_full_box_is_identity_and_flip_is_exact():
    x = torch.rand(3, 3, 9, 14)
    full = torch.tensor([[0.0, 0.0, 9.0, 14.0]]).repeat(3, 1)
    assert torch.equal(resized_crop(x, full), x)
    assert torch.equal(resized_crop(x, full, flip=torch.ones(3, dtype=torch.bool)), x.flip(-1))


def test_scale_and_ratio_one_gives_identity_within_1e6():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, 28, 28)
    boxes = sample_crops(4, 28, 28, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=g)
    torch.testing.assert_close(resized_crop(x, boxes), x, atol=1e-6, rtol=0)


def test_sampled_boxes_follow_scale_and_ratio():
    g = torch.Generator().manual_seed(2)
    h, w = 32, 32                                         # square: rejections symmetric in aspect
    boxes = sample_crops(4000, h, w, scale=(0.2, 0.9), ratio=(0.5, 2.0), generator=g).double()
    top, left, bh, bw = boxes.unbind(1)
    assert bool((top >= 0).all() and (left >= 0).all() and (top + bh <= h + 1e-4).all() and (left + bw <= w + 1e-4).all())
    found = (bh * bw) < h * w - 1e-3                      # not the whole-image fallback
    assert found.float().mean() > 0.97
    frac = (bh * bw / (h * w))[found]
    aspect = (bw / bh)[found]
    assert frac.min() >= 0.2 - 1e-5 and frac.max() <= 0.9 + 1e-5
    assert aspect.min() >= 0.5 - 1e-5 and aspect.max() <= 2.0 + 1e-5
    # log-uniform aspect: about as many crops wider than tall as taller than wide
    assert abs(float((aspect > 1).double().mean()) - 0.5) < 0.05
    # positions spread over the free range: mean relative offset ~ 1/2
    rel = (left / (w - bw).clamp(min=1e-6))[found & (w - bw > 1)]
    assert abs(float(rel.mean()) - 0.5) < 0.03


def test_impossible_crop_falls_back_to_whole_image():
    boxes = sample_crops(50, 10, 30, scale=(1.0, 1.0), ratio=(0.9, 1.1))   # no box of area 1 has aspect ~1
    assert torch.equal(boxes, torch.tensor([[0.0, 0.0, 10.0, 30.0]]).repeat(50, 1))


def test_resized_crop_bad_arguments():
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"`boxes` must have shape \(B, 4\) = \(2, 4\), got \(2, 3\)"):
        resized_crop(x, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"`size` must be None, a positive int or a pair"):
        resized_crop(x, torch.zeros(2, 4), size=0)
    with pytest.raises(ValueError, match=r"`scale` must be a pair \(low, high\) with 0 < low <= high <= 1, got \(0.5, 1.5\)"):
        sample_crops(2, 8, 8, scale=(0.5, 1.5))
    assert math.isclose(float(resized_crop(torch.ones(1, 1, 4, 4), torch.tensor([[1.0, 1.0, 2.0, 2.0]]), size=1)), 1.0)
