"""The text-encoder interface: strings -> token tensors -> one vector per string.

Every text encoder (our trainable ones, frozen baselines, a Hugging Face model you bring) is an `nn.Module` with
`out_dim`, `tokenize(texts) -> dict of tensors` (CPU, no gradient) and `forward(tokens) -> (B, out_dim)`. Keeping
tokenisation outside `forward` lets the trainer tokenise once per batch, move the tensors to the device, and replay
the same batch (gradient caching).

>>> import torch
>>> class Chars(TextEncoder):
...     out_dim = 4
...     def tokenize(self, texts):
...         return {"length": torch.tensor([[float(len(t))] for t in texts])}
...     def forward(self, tokens):
...         return tokens["length"].repeat(1, 4)
>>> encode_texts(Chars(), ["ab", "abcd"], normalize=False)[:, 0].tolist()
[2.0, 4.0]
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...devices import module_device

__all__ = ["TextEncoder", "encode_texts"]


class TextEncoder(nn.Module):
    """Base class of text encoders. Subclasses set `out_dim` and implement `tokenize` and `forward`."""

    out_dim: int

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def _device_of(module: nn.Module) -> torch.device:
    return module_device(module)


@torch.no_grad()
def encode_texts(encoder: TextEncoder, texts: list[str], *, batch_size: int = 256,
                 normalize: bool = True) -> torch.Tensor:
    """Embed `texts` in batches with the encoder in eval mode (its mode is restored). Shape: (N,) -> (N, D), float32, CPU."""
    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        raise TypeError("`texts` must be a list of strings")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
    was_training = encoder.training
    encoder.eval()
    device = _device_of(encoder)
    # longest first, so texts of similar length share a batch (less padding for the encoders that pad, as
    # sentence-transformers' encode does); the rows go back to the caller's order at the end
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = []
    try:
        for i in range(0, len(texts), batch_size):
            batch = [texts[j] for j in order[i:i + batch_size]]
            tokens = {k: v.to(device) for k, v in encoder.tokenize(batch).items()}
            z = encoder(tokens).float()                                          # (b, D)
            out.append((F.normalize(z, dim=-1) if normalize else z).cpu())
    finally:
        encoder.train(was_training)
    if not out:
        return torch.zeros(0, encoder.out_dim)
    result = torch.empty(len(texts), out[0].shape[1])                            # (N, D)
    result[torch.tensor(order)] = torch.cat(out)
    return result
