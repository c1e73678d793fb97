"""Starting an encoder from weights on disk, and freezing it.

`load_pretrained(encoder, path)` reads a state dict (``torch.load(weights_only=True)`` of a .pt / .pth / .bin
file, or a .safetensors file) and loads it into the encoder, with errors that list the keys and shapes that do not
match. A common ``module.`` (DataParallel) or ``encoder.`` prefix of the file's keys is stripped when that makes
them match, and a file saved from a wrapped library's own model (timm's, transformers') loads into the wrapper
(its ``model.`` prefix is added). A contrastlab checkpoint (``RUN/checkpoints/last.pt``) gives its encoder's
weights. The input statistics (`Standardize` buffers) are optional in the file: a file without them keeps the
data's. `FrozenEncoder` wraps an encoder that is not trained: no gradients, always in eval mode.

>>> import tempfile
>>> from contrastlab.models import create_encoder
>>> source = create_encoder("small_cnn", in_channels=1, widths=(4, 4, 8, 8))
>>> path = tempfile.mkdtemp() + "/weights.pt"
>>> torch.save({"module." + k: v for k, v in source.state_dict().items()}, path)
>>> target = load_pretrained(create_encoder("small_cnn", in_channels=1, widths=(4, 4, 8, 8)), path)
>>> bool(torch.equal(target.features[0].weight, source.features[0].weight))
True
>>> frozen = FrozenEncoder(target).train()
>>> frozen.training, any(p.requires_grad for p in frozen.parameters()), sorted(frozen.state_dict())[0]
(False, False, 'features.0.weight')
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..devices import CPU
from .encoders import Standardize

__all__ = ["PRETRAINED_SUFFIXES", "read_state_dict", "load_pretrained", "FrozenEncoder"]

PRETRAINED_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
STRIPPED_PREFIXES = ("module.", "encoder.")     # DataParallel's wrapper; a method's encoder in its state dict
SHOWN = 5                                       # keys listed in an error message


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else ""


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a state dict file, on the CPU: a .pt / .pth / .bin file of `torch.save` (read with
    ``weights_only=True``: no code runs) or a .safetensors file. A contrastlab checkpoint gives its encoder's
    entries (``method`` -> ``encoder.*``)."""
    p = Path(os.fspath(path)).expanduser()
    if p.suffix.lower() not in PRETRAINED_SUFFIXES:
        raise ValueError(f"`pretrained` must be a {', '.join(PRETRAINED_SUFFIXES)} file, got {str(p)!r}")
    if not p.is_file():
        raise FileNotFoundError(f"`pretrained` file {str(p)!r} does not exist")
    size = p.stat().st_size
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(p), device=str(CPU))
        else:
            state = torch.load(p, map_location=CPU, weights_only=True)
    except ImportError as e:
        raise ImportError(f"`pretrained` file {str(p)!r} needs the `safetensors` package ({e}); "
                          f"pip install safetensors") from None
    except Exception as e:        # truncated zip, bad header, a pickle of code objects, ...: all say the file
        if isinstance(e, MemoryError):
            raise
        raise ValueError(f"`pretrained` file {str(p)!r} ({size} bytes) is corrupt or truncated, or not a state "
                         f"dict of tensors, and cannot be loaded: {type(e).__name__}: {_first_line(e)}") from None
    if isinstance(state, Mapping) and isinstance(state.get("method"), Mapping):      # a contrastlab checkpoint
        state = {k[len("encoder."):]: v for k, v in state["method"].items() if k.startswith("encoder.")}
    if not isinstance(state, Mapping) or not state:
        raise ValueError(f"`pretrained` file {str(p)!r} must hold a state dict (a mapping of parameter names to "
                         f"tensors), got {'an empty one' if isinstance(state, Mapping) else type(state).__name__}")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise ValueError(f"`pretrained` file {str(p)!r} must hold a state dict of tensors; entries that are not "
                         f"tensors: {bad[:SHOWN]}")
    return dict(state)


def _optional_keys(encoder: nn.Module) -> set[str]:
    """The input statistics (buffers of `Standardize` submodules): a file need not have them."""
    return {f"{prefix}.{b}" if prefix else b for prefix, m in encoder.named_modules() if isinstance(m, Standardize)
            for b, _ in m.named_buffers()}


def _strip(keys: list[str]) -> list[tuple[str, list[str]]]:
    """(stripped prefix, keys) for the keys as they are and without each common leading module. / encoder."""
    out, done = [("", keys)], ""
    while True:
        pre = next((p for p in STRIPPED_PREFIXES if keys and all(k.startswith(p) for k in keys)), None)
        if pre is None:
            return out
        keys, done = [k[len(pre):] for k in keys], done + pre
        out.append((done, keys))


def _wrapper_prefix(weights: set[str]) -> str:
    """"model." when every weight of the encoder is under one submodule (an external model in its wrapper)."""
    heads = {k.split(".", 1)[0] for k in weights if "." in k}
    return f"{heads.pop()}." if len(heads) == 1 and all("." in k for k in weights) else ""


def _listed(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:SHOWN]) + (f" (and {len(keys) - SHOWN} more)" if len(keys) > SHOWN else "")


def load_pretrained(encoder: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load the state dict file `path` into `encoder` (in place; returned). Every weight of the encoder must be in
    the file and every entry of the file must be one of the encoder's, with its shape; the error lists the first
    missing and unexpected keys and the shape mismatches otherwise."""
    state = read_state_dict(path)
    want = encoder.state_dict()
    optional = _optional_keys(encoder)
    required = set(want) - optional
    added = _wrapper_prefix(required)
    tries = [(stripped, add, [add + k for k in keys]) for stripped, keys in _strip(list(state))
             for add in dict.fromkeys(["", added])]
    best = max(tries, key=lambda t: (len(set(t[2]) & set(want)), -len(t[0])))   # most matches, least stripped
    for stripped, add, keys in tries:
        if required <= set(keys) <= set(want):
            best = (stripped, add, keys)
            break
    stripped, add, keys = best
    renamed = dict(zip(keys, state.values()))
    missing, unexpected = required - set(keys), set(keys) - set(want)
    shapes = [f"{k}: {tuple(v.shape)} in the file, {tuple(want[k].shape)} in the encoder"
              for k, v in renamed.items() if k in want and tuple(v.shape) != tuple(want[k].shape)]
    if missing or unexpected or shapes:
        how = (f" (keys compared after stripping {stripped!r}" if stripped else " (keys compared") + \
              (f" and adding {add!r})" if add else ")")
        parts = ([f"missing {len(missing)}: {_listed(missing)}"] if missing else []) + \
                ([f"unexpected {len(unexpected)}: {_listed(unexpected)}"] if unexpected else []) + \
                ([f"shape mismatches {len(shapes)}: {'; '.join(shapes[:SHOWN])}"] if shapes else [])
        raise ValueError(f"`pretrained` file {str(Path(path))!r} does not fit the encoder "
                         f"{type(encoder).__name__}{how}: {'; '.join(parts)}")
    encoder.load_state_dict(renamed, strict=False)      # only optional input statistics may be left out
    return encoder


class FrozenEncoder(nn.Module):
    """`encoder`, not trained: its parameters get no gradient (``requires_grad=False``, so no optimizer holds
    them), it runs under ``torch.no_grad()``, and it stays in eval mode whatever ``train()`` says (batch-norm
    statistics frozen, no dropout). Its state dict has the wrapped encoder's own keys, so a frozen run's encoder
    loads into the plain architecture and back. A momentum copy (MoCo's key encoder) is frozen the same way.

    Shape: what `encoder` takes -> (B, out_dim).
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"`encoder` must be an nn.Module, got {type(encoder).__name__}")
        self.inner = encoder.requires_grad_(False)
        if isinstance(getattr(encoder, "out_dim", None), int):
            self.out_dim = encoder.out_dim
        super().train(False)

    def train(self, mode: bool = True):
        return super().train(False)

    def forward(self, *args, **kwargs):
        with torch.no_grad():
            return self.inner(*args, **kwargs)

    # the wrapped encoder's keys, without "inner."
    def state_dict(self, *args, destination=None, prefix="", keep_vars=False):
        return self.inner.state_dict(*args, destination=destination, prefix=prefix, keep_vars=keep_vars)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(prefix + "inner.")]:
            state_dict[prefix + "inner." + key[len(prefix):]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
