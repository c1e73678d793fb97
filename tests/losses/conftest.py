"""Example inputs for every registered loss, by input kind."""

import pytest
import torch

from contrastlab.losses import LOSSES


def make_inputs(kind: str, *, b: int = 8, d: int = 6, dtype=torch.float32, seed: int = 0, requires_grad=True):
    g = torch.Generator().manual_seed(seed)

    def emb(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype).requires_grad_(requires_grad)

    labels = torch.arange(b) % max(2, b // 2)
    if kind == "pairs":
        return (emb(b, d), emb(b, d))
    if kind == "views_labels":
        return (emb(b, 2, d), labels)
    if kind == "embeddings_labels":
        return (emb(b, d), labels)
    if kind == "pairs_flags":
        return (emb(b, d), emb(b, d), torch.arange(b) % 2 == 0)
    raise KeyError(kind)


@pytest.fixture(params=sorted(LOSSES))
def spec(request):
    return LOSSES[request.param]
