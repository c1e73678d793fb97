"""embed: batched eval-mode features, training flags restored, inputs untouched."""

import pytest
import torch

from contrastlab.eval import embed, evaluating

from .conftest import DEVICES


class Net(torch.nn.Module):
    def __init__(self, out_dim=6):
        super().__init__()
        self.out_dim = out_dim
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.drop = torch.nn.Dropout(0.5)
        self.fc = torch.nn.Linear(4 * 5 * 5, out_dim)

    def forward(self, x):                                     # (B, 3, 5, 5) -> (B, out_dim)
        return self.fc(self.drop(self.bn(self.conv(x)).relu()).flatten(1))


def images(n=23, seed=0):
    return torch.randint(0, 256, (n, 3, 5, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_batches_equal_one_eval_forward_and_flags_come_back():
    net = Net().train()
    net.drop.eval()                                           # a mixed state must survive as it was
    x = images()
    x_before = x.clone()
    bn_before = net.bn.running_mean.clone()
    z = embed(net, x, batch_size=5)
    assert net.training and not net.drop.training and net.bn.training and net.conv.training
    assert torch.equal(x, x_before)
    assert torch.equal(net.bn.running_mean, bn_before)        # eval mode: running stats untouched
    net.eval()
    with torch.no_grad():
        ref = net(x.double().div(255).float())
    assert z.shape == (23, 6) and z.dtype == torch.float32 and not z.requires_grad
    torch.testing.assert_close(z, ref, rtol=1e-5, atol=1e-6)


def test_normalize_and_transform():
    net = Net().eval()
    x = images()
    z = embed(net, x, normalize=True)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(23))
    seen = []
    zt = embed(net, x, batch_size=10, transform=lambda xb: seen.append(xb.shape[0]) or torch.zeros_like(xb))
    assert seen == [10, 10, 3]
    with torch.no_grad():
        torch.testing.assert_close(zt, net(torch.zeros(23, 3, 5, 5)))


def test_flags_restored_after_an_exception():
    net = Net().train()

    def boom(xb):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        embed(net, images(), transform=boom)
    assert all(m.training for m in net.modules())


def test_evaluating_context_manager():
    net = Net().train()
    with evaluating(net):
        assert not any(m.training for m in net.modules())
        assert not torch.is_grad_enabled()
    assert all(m.training for m in net.modules())


def test_encoder_output_is_checked():
    with pytest.raises(ValueError, match=r"`encoder` returned F = 6 features but its `out_dim` is 7"):
        net = Net()
        net.out_dim = 7
        embed(net, images())
    with pytest.raises(ValueError, match=r"`encoder` must map a batch of 23 images to features \(23, F\), got \(23, 3, 5, 5\)"):
        embed(torch.nn.Identity(), images())


@pytest.mark.parametrize("device", DEVICES)
def test_output_on_encoder_device(device):
    net = Net().to(device)
    z = embed(net, images())                                  # images on the CPU, encoder anywhere
    assert z.device.type == device
