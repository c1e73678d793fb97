"""`contrastlab.devices`: what `auto` means, clear errors for devices and precisions this machine lacks, moving
batches, the process-group backend, and the rule that no other module names a device type."""
import re
from pathlib import Path

import pytest
import torch

from contrastlab import devices
from contrastlab import distributed as dist

SRC = Path(devices.__file__).parent


def test_auto_is_the_cpu_on_a_machine_without_accelerators():
    if devices.available() != ["cpu"]:
        pytest.skip("this machine has an accelerator")
    assert devices.resolve("auto") == devices.resolve("cpu") == devices.CPU
    assert devices.resolve(devices.CPU) == devices.CPU
    assert dist.default_device() == devices.default_device() == devices.CPU
    assert devices.resolve_precision("auto", devices.CPU) == "fp32"
    assert devices.default_backend() == "gloo"


@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_names_the_device_and_what_is_available(spec):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=rf"`device` '{spec}' is not available: .*CUDA.*; available: cpu"):
        devices.resolve(spec)


def test_mps_and_bad_names_are_clear_errors():
    if not devices._mps():
        with pytest.raises(ValueError, match=r"`device` 'mps' is not available: .*MPS.*; available: cpu"):
            devices.resolve("mps")
    for bad in ("tpu", "gpu", "cuda:x", "", 3):
        with pytest.raises(ValueError, match=r"`device` must be one of auto, cpu, cuda, cuda:N, mps"):
            devices.resolve(bad)


def _fake_gpus(monkeypatch, n: int, *, bf16: bool):
    """Pretend this process sees `n` CUDA devices (for what `auto` and the precision rules decide, not to run)."""
    monkeypatch.setattr(devices, "_cuda_count", lambda: n)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100-SXM2-16GB")


def test_auto_takes_this_ranks_gpu_under_torchrun(monkeypatch):
    _fake_gpus(monkeypatch, 2, bf16=True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert devices.resolve("auto") == torch.device("cuda", 1) == devices.resolve("cuda")     # 3 % 2
    assert devices.resolve("cuda:0") == torch.device("cuda", 0)
    assert devices.default_backend() == "nccl" and devices.backend_for(devices.CPU) == "gloo"
    with pytest.raises(ValueError, match=r"'cuda:2' is not available: this machine has 2 CUDA device\(s\); "
                                         r"available: cpu, cuda:0, cuda:1"):
        devices.resolve("cuda:2")


def test_precision_per_device(monkeypatch):
    assert devices.resolve_precision("bf16", devices.CPU) == "bf16"        # CPU autocast to bf16 exists
    with pytest.raises(ValueError, match=r"`precision` must be one of \['auto', 'fp32', 'bf16', 'fp16'\], got 'fp8'"):
        devices.resolve_precision("fp8", devices.CPU)
    _fake_gpus(monkeypatch, 1, bf16=True)
    assert devices.resolve_precision("auto", torch.device("cuda", 0)) == "bf16"
    _fake_gpus(monkeypatch, 1, bf16=False)                                  # a V100: no bf16
    assert devices.resolve_precision("auto", torch.device("cuda", 0)) == "fp32"
    with pytest.raises(ValueError, match=r"`precision` 'bf16' is not supported on 'cuda:0' \(Tesla V100-SXM2-16GB\); "
                                         r"use 'fp16' .* or 'fp32'"):
        devices.resolve_precision("bf16", torch.device("cuda", 0))


def test_to_device_moves_nested_batches_and_keeps_other_values():
    meta = torch.device("meta")
    batch = {"views": torch.zeros(2, 2, 1, 4, 4), "tokens": {"ids": torch.ones(2, 3, dtype=torch.long)},
             "texts": ["a", "b"], "pair": (torch.zeros(1), 3), "n": 2}
    out = devices.to_device(batch, meta)
    assert out["views"].device == out["tokens"]["ids"].device == out["pair"][0].device == meta
    assert out["texts"] == ["a", "b"] and out["pair"][1] == 3 and out["n"] == 2
    same = devices.to_device(batch, devices.CPU)
    assert same["views"] is batch["views"]                                   # already there: no copy
    assert not devices.pinned(devices.CPU) and devices.pinned(torch.device("cuda", 0))
    assert devices.to_host(batch["views"]).device == devices.CPU


def test_module_device_and_rng_state_round_trip():
    assert devices.module_device(torch.nn.ReLU()) == devices.CPU
    assert devices.module_device(torch.nn.Linear(2, 2, device="meta")).type == "meta"
    state = devices.rng_state()
    a = torch.rand(3)
    devices.set_rng_state(state)
    assert torch.equal(a, torch.rand(3))
    devices.set_rng_state({**state, "cuda": [torch.zeros(8, dtype=torch.uint8)] * 7})   # from a 7-GPU machine
    assert torch.equal(a, torch.rand(3))                                                # the CPU's is restored


# the rule: only devices.py picks or names a device type
_NAMES = re.compile(r"""["'](cuda|mps|cpu)(:\d+)?["']|\.cuda\(|torch\.cuda\b|torch\.backends\.mps|torch\.mps\b""")


def test_no_module_but_devices_names_a_device_type():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "devices.py" and path.parent == SRC:
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if _NAMES.search(line):
                offenders.append(f"{path.relative_to(SRC.parent)}:{i}: {line.strip()}")
    assert not offenders, "route these through contrastlab.devices:\n" + "\n".join(offenders)
