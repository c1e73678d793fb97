"""NT-Xent's size dispatch: the dense logits-matrix path and the tiled path both equal the float64 reference of
the published formula (value and gradient), and `auto` picks by the device's threshold."""
import pytest
import torch

from contrastlab import devices
from contrastlab.losses import nt_xent
from contrastlab.losses.infonce import nt_xent_path

from .test_reference import close, grads_match, nt_xent_ref, rand


@pytest.mark.parametrize("path", ["dense", "tiled", "auto"])
@pytest.mark.parametrize("t", [0.05, 0.5])
@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("b", [2, 5])
def test_every_path_matches_the_reference(path, t, decoupled, b):
    a, p = rand(b, b, 4), rand(b + 50, b, 4)
    close(nt_xent(a, p, temperature=t, decoupled=decoupled, path=path), nt_xent_ref(a, p, t, decoupled))
    grads_match(lambda x, y: nt_xent(x, y, temperature=t, decoupled=decoupled, path=path),
                lambda x, y: nt_xent_ref(x, y, t, decoupled), a, p)


def test_dense_and_tiled_agree_in_float32_on_a_larger_batch():
    g = torch.Generator().manual_seed(0)
    a, p = torch.randn(300, 32, generator=g), torch.randn(300, 32, generator=g)
    a64, p64 = a.double(), p.double()
    ref = nt_xent(a64, p64, temperature=0.1, path="tiled")
    for path in ("dense", "tiled"):
        torch.testing.assert_close(nt_xent(a, p, temperature=0.1, path=path).double(), ref, rtol=1e-5, atol=1e-6)


def test_auto_follows_the_devices_threshold(monkeypatch):
    assert devices.dense_loss_rows(devices.CPU) == 0                     # the CPU: always tiled
    assert nt_xent_path(4, devices.CPU) == "tiled"
    monkeypatch.setitem(devices.DENSE_LOSS_ROWS, "cpu", 10)
    assert [nt_xent_path(n, devices.CPU) for n in (4, 10, 12)] == ["dense", "dense", "tiled"]
    a, p = rand(0, 5, 4), rand(1, 5, 4)                                   # 10 rows: dense, still the reference
    close(nt_xent(a, p, temperature=0.2), nt_xent_ref(a, p, 0.2))


def test_bad_path_is_a_clear_error():
    with pytest.raises(ValueError, match=r"`path` must be one of \['auto', 'dense', 'tiled'\], got 'plain'"):
        nt_xent(torch.randn(4, 3), torch.randn(4, 3), path="plain")
