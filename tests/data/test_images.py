"""ImageData validates shapes, dtypes, lengths and label ranges with messages naming the field."""

import pytest
import torch

from contrastlab.data import ImageData


def make(**kw):
    base = dict(name="toy", x=torch.zeros(6, 1, 4, 5, dtype=torch.uint8), y=torch.tensor([0, 1, 2, 0, 1, 2]),
                x_test=torch.zeros(2, 1, 4, 5, dtype=torch.uint8), y_test=torch.tensor([2, 0]),
                classes=("a", "b", "c"))
    base.update(kw)
    return ImageData(**base)


def test_properties_and_repr():
    d = make(group=torch.tensor([0, 0, 1, 1, 2, 2]))
    assert (d.channels, d.image_size, d.num_classes) == (1, (4, 5), 3)
    assert repr(d) == "ImageData(name='toy', x=(6, 1, 4, 5), test=2, classes=3, groups=3)"
    assert make(x=torch.zeros(6, 3, 7, 7, dtype=torch.uint8), x_test=None, y_test=None).channels == 3


def test_num_classes_without_names_and_unlabelled():
    assert make(classes=None, y=torch.tensor([0, 1, 0, 1, 0, 1]), y_test=torch.tensor([4, 0])).num_classes == 5
    assert make(y=None, y_test=None, classes=None).num_classes is None


def test_non_contiguous_is_made_contiguous():
    x = torch.arange(5 * 4 * 6 * 3).reshape(5, 4, 6, 3).to(torch.uint8).permute(0, 3, 1, 2)
    assert not x.is_contiguous()
    d = make(x=x, y=None, x_test=None, y_test=None, classes=None)
    assert d.x.is_contiguous() and torch.equal(d.x, x)


def test_frozen():
    with pytest.raises(AttributeError):
        make().name = "other"


@pytest.mark.parametrize("kw, exc, msg", [
    (dict(name=""), ValueError, r"`name` must be a non-empty str, got ''"),
    (dict(x=torch.zeros(6, 1, 4, 5)), TypeError, r"`x` must have dtype torch.uint8, got torch.float32"),
    (dict(x=torch.zeros(6, 4, 5, dtype=torch.uint8)), ValueError, r"`x` must have shape \(N, C, H, W\), got a 3-d"),
    (dict(x=torch.zeros(6, 4, 4, 5, dtype=torch.uint8)), ValueError, r"`x` must have C in \{1, 3\}.*got C=4"),
    (dict(x=torch.zeros(0, 1, 4, 5, dtype=torch.uint8), y=None, x_test=None, y_test=None, classes=None),
     ValueError, r"`x` must not be empty, got shape \(0, 1, 4, 5\)"),
    (dict(x=[[1]]), TypeError, r"`x` must be a torch.Tensor of shape \(N, C, H, W\), got list"),
    (dict(x_test=torch.zeros(2, 3, 4, 5, dtype=torch.uint8)), ValueError,
     r"`x_test` must have the same \(C, H, W\) as `x`, \(1, 4, 5\), got \(3, 4, 5\)"),
    (dict(y=torch.tensor([0, 1, 2])), ValueError, r"`y` must have shape \(N,\) = \(6,\) like `x`, got \(3,\)"),
    (dict(y=torch.tensor([0, 1, 2, 0, 1, 2], dtype=torch.int32)), TypeError,
     r"`y` must have dtype torch.int64, got torch.int32; convert with `.long\(\)`"),
    (dict(y=torch.tensor([0, 1, 3, 0, 1, 2])), ValueError, r"`y` must hold labels in \[0, 3\).*got 3"),
    (dict(y=torch.tensor([0, -1, 2, 0, 1, 2])), ValueError, r"`y` must hold labels >= 0, got -1"),
    (dict(y_test=torch.tensor([0, 7])), ValueError, r"`y_test` must hold labels in \[0, 3\).*got 7"),
    (dict(y_test=torch.tensor([0])), ValueError, r"`y_test` must have shape \(N,\) = \(2,\) like `x_test`"),
    (dict(y_test=None), ValueError, r"`y_test` must be given when `y` and `x_test` are"),
    (dict(y=None), ValueError, r"`y_test` must be None when `y` is None"),
    (dict(y=None, y_test=None), ValueError, r"`classes` must be None when `y` is None"),
    (dict(x_test=None), ValueError, r"`y_test` must be None when `x_test` is None"),
    (dict(classes=("a", "a", "b")), ValueError, r"`classes` must be non-empty and unique"),
    (dict(classes=["a", "b", "c"]), TypeError, r"`classes` must be a tuple of str"),
    (dict(group=torch.tensor([0, 1])), ValueError, r"`group` must have shape \(N,\) = \(6,\)"),
    (dict(notes=["x"]), TypeError, r"`notes` must be a tuple of str"),
])
def test_bad_fields(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        make(**kw)
