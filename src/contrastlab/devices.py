"""The one place that picks and names devices (cpu / cuda / mps), and the precision each one trains in.

Everything else asks this module: which device ``auto`` means here, whether a device exists, which precision
``auto`` means on it, how a batch gets there (pinned memory and ``non_blocking`` from the CPU to a GPU), which
process-group backend its tensors need (NCCL for CUDA tensors, Gloo otherwise), and how to save or restore its
random state. No other module calls ``.cuda()`` or spells a device type.

Example::

    >>> import torch
    >>> from contrastlab import devices
    >>> devices.resolve("cpu")
    device(type='cpu')
    >>> devices.resolve_precision("auto", devices.CPU)
    'fp32'
    >>> batch = devices.to_device({"views": torch.zeros(2, 3), "index": torch.arange(2)}, devices.CPU)
    >>> batch["views"].device.type
    'cpu'
    >>> devices.resolve("tpu")
    Traceback (most recent call last):
    ...
    ValueError: `device` must be one of auto, cpu, cuda, cuda:N, mps, got 'tpu'
"""
from __future__ import annotations

import os
import re

import torch
from torch import nn

__all__ = ["CPU", "DEVICES", "PRECISIONS", "available", "resolve", "is_device_setting", "default_device", "check_device",
           "resolve_precision", "check_precision", "to_device", "pinned", "module_device", "fused_optimizers", "backend_for",
           "default_backend", "set_current", "synchronize", "autocast_types", "rng_state", "set_rng_state", "accelerator_rng_state",
           "rng_devices", "to_host", "CUDA_TYPE", "DENSE_LOSS_ROWS", "dense_loss_rows", "device_count",
           "reset_peak_memory", "peak_memory", "free_cached_memory", "is_out_of_memory", "device_name"]

CPU = torch.device("cpu")
CUDA_TYPE, MPS_TYPE = "cuda", "mps"
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")          # what `device` accepts
PRECISIONS = ("auto", "fp32", "bf16", "fp16")               # what `precision` accepts
_SPEC = re.compile(r"^(auto|cpu|mps|cuda(?::\d+)?)$")


def _cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _mps() -> bool:
    backend = getattr(torch.backends, MPS_TYPE, None)
    return bool(backend is not None and backend.is_available())


def available() -> list[str]:
    """The devices this process can train on, e.g. ``['cpu']`` or ``['cpu', 'cuda:0', 'cuda:1']``."""
    return ["cpu", *(f"{CUDA_TYPE}:{i}" for i in range(_cuda_count())), *([MPS_TYPE] if _mps() else [])]


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def default_device() -> torch.device:
    """What ``auto`` means: ``cuda:LOCAL_RANK`` when CUDA is present (one GPU per process under torchrun),
    else the Apple GPU (mps) when present, else the CPU."""
    if _cuda_count():
        return torch.device(CUDA_TYPE, _local_rank() % _cuda_count())
    if _mps():
        return torch.device(MPS_TYPE)
    return CPU


def _unavailable(dev: torch.device) -> str | None:
    """Why ``dev`` cannot be used here, or None when it can."""
    if dev.type == CUDA_TYPE:
        n = _cuda_count()
        if torch.version.cuda is None and not getattr(torch.version, "hip", None):
            return "this torch build has no CUDA"
        if n == 0:
            return "no CUDA device was found (torch.cuda.is_available() is False)"
        if dev.index is not None and dev.index >= n:
            return f"this machine has {n} CUDA device(s)"
    elif dev.type == MPS_TYPE and not _mps():
        return "this torch build or machine has no MPS (Apple GPU) backend"
    return None


def check_device(device) -> torch.device:
    """``device`` (a torch.device or a name) as a torch.device, with a clear error when it is not available.
    Types other than cpu / cuda / mps (``meta``, used by the tests) pass through unchecked."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"`device` must be a torch device or a name like 'cpu' or 'cuda:0', got {device!r}") from None
    why = _unavailable(dev)
    if why:
        raise ValueError(f"`device` {str(dev)!r} is not available: {why}; available: {', '.join(available())}")
    return dev


def resolve(device="auto") -> torch.device:
    """The torch.device for a ``device`` setting: auto | cpu | cuda | cuda:N | mps (or a torch.device).
    ``cuda`` means ``cuda:LOCAL_RANK`` (this process's GPU under torchrun). Raises ValueError naming the device and
    what is available when it cannot be used."""
    if isinstance(device, torch.device):
        return check_device(device)
    if not isinstance(device, str) or not _SPEC.match(device.strip().lower()):
        raise ValueError(f"`device` must be one of {', '.join(DEVICES)}, got {device!r}")
    spec = device.strip().lower()
    if spec == "auto":
        return default_device()
    if spec == CUDA_TYPE and _cuda_count():
        return torch.device(CUDA_TYPE, _local_rank() % _cuda_count())
    return check_device(spec)


# -- precision ------------------------------------------------------------------------------------------------
def _bf16_ok(dev: torch.device) -> bool:
    if dev.type == CUDA_TYPE:
        return bool(torch.cuda.is_bf16_supported())
    return dev.type == "cpu"


def check_precision(device: torch.device, precision: str) -> None:
    """A clear error where ``precision`` (fp32 | bf16 | fp16) cannot run on ``device``."""
    dev = torch.device(device)
    if precision == "fp32":
        return
    if not torch.amp.autocast_mode.is_autocast_available(dev.type):
        raise ValueError(f"`precision` {precision!r} needs autocast, which torch does not offer on {dev.type!r}; "
                         f"use 'fp32'")
    if precision == "bf16" and dev.type == CUDA_TYPE and not _bf16_ok(dev):
        raise ValueError(f"`precision` 'bf16' is not supported on {str(dev)!r} ({torch.cuda.get_device_name(dev)}); "
                         f"use 'fp16' (with its gradient scaler) or 'fp32'")
    if precision == "bf16" and dev.type == MPS_TYPE:
        raise ValueError(f"`precision` 'bf16' is not supported on {str(dev)!r} by contrastlab; use 'fp16' or 'fp32'")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``precision`` for ``device``: ``auto`` is bf16 on GPUs that support it, fp32 elsewhere (the CPU: bf16
    autocast there is slower than fp32 for these models); the others are checked and returned."""
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {list(PRECISIONS)}, got {precision!r}")
    dev = torch.device(device)
    if precision == "auto":
        return "bf16" if dev.type == CUDA_TYPE and _bf16_ok(dev) else "fp32"
    check_precision(dev, precision)
    return precision


def autocast_types() -> tuple[str, ...]:
    """The device types autocast may be active on in this process (to switch it off around a float32 loss)."""
    return ("cpu", CUDA_TYPE) if torch.cuda.is_available() else ("cpu",)


# -- moving tensors -------------------------------------------------------------------------------------------
def pinned(device: torch.device) -> bool:
    """Whether copies to ``device`` go through pinned (page-locked) host memory, ``non_blocking``: CUDA only."""
    return torch.device(device).type == CUDA_TYPE


def to_device(obj, device: torch.device):
    """``obj`` (a tensor, or dicts / lists / tuples of them; other values unchanged) on ``device``. From the CPU
    to a CUDA device the copy is from pinned memory and ``non_blocking``; already there: the same tensors."""
    dev = torch.device(device)
    if torch.is_tensor(obj):
        if obj.device == dev:
            return obj
        if pinned(dev) and obj.device.type == "cpu":
            return obj.pin_memory().to(dev, non_blocking=True)
        return obj.to(dev)
    if isinstance(obj, dict):
        return {k: to_device(v, dev) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and any(torch.is_tensor(v) or isinstance(v, (dict, list, tuple)) for v in obj):
        return type(obj)(to_device(v, dev) for v in obj)
    return obj


def module_device(module: nn.Module) -> torch.device:
    """Where a module's first parameter (or buffer) lives; the CPU for a module with neither."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return CPU


def fused_optimizers(device: torch.device) -> bool:
    """Whether torch's fused optimizer kernels (one kernel per tensor) run on ``device``."""
    return torch.device(device).type in ("cpu", CUDA_TYPE, MPS_TYPE)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (before reading a clock); a no-op on the CPU."""
    dev = torch.device(device)
    if dev.type == CUDA_TYPE:
        torch.cuda.synchronize(dev)
    elif dev.type == MPS_TYPE:
        torch.mps.synchronize()


# -- processes --------------------------------------------------------------------------------------------------
def backend_for(device: torch.device) -> str:
    """The process-group backend for tensors on ``device``: NCCL for CUDA tensors, Gloo for everything else."""
    return "nccl" if torch.device(device).type == CUDA_TYPE else "gloo"


def default_backend() -> str:
    """The backend for the device ``auto`` picks (NCCL on a CUDA machine, Gloo otherwise)."""
    return backend_for(default_device())


def set_current(device: torch.device) -> None:
    """Make ``device`` this process's current CUDA device (NCCL needs it); a no-op for other devices."""
    dev = torch.device(device)
    if dev.type == CUDA_TYPE:
        torch.cuda.set_device(dev)


# -- random state -----------------------------------------------------------------------------------------------
def rng_devices() -> list[int]:
    """The CUDA devices whose random state ``torch.random.fork_rng`` should save (none without CUDA)."""
    return list(range(_cuda_count()))


def accelerator_rng_state() -> dict:
    """The global random state of every initialised CUDA device (empty without one)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return {CUDA_TYPE: torch.cuda.get_rng_state_all()}
    return {}


def rng_state() -> dict:
    """The global random state of the CPU and of every initialised CUDA device."""
    return {"cpu": torch.get_rng_state(), **accelerator_rng_state()}


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state`'s state; CUDA states are restored where the same number of CUDA devices exists
    (a state saved on a GPU machine and restored on a CPU-only one restores the CPU's alone)."""
    if "cpu" in state:
        torch.set_rng_state(state["cpu"])
    if CUDA_TYPE in state and len(state[CUDA_TYPE]) == _cuda_count():
        torch.cuda.set_rng_state_all(state[CUDA_TYPE])


def is_device_setting(text: str) -> bool:
    """Whether ``text`` is a `device` setting this module understands (auto | cpu | cuda | cuda:N | mps)."""
    return isinstance(text, str) and bool(_SPEC.match(text.strip().lower()))


def to_host(t: torch.Tensor) -> torch.Tensor:
    """``t`` detached on the CPU (for numpy, snapshots and metrics); the same tensor when it is there already."""
    return t.detach().to(CPU)


# -- loss-kernel choice and memory accounting (benchmarks) -------------------------------------------------------
#: Rows (2B for NT-Xent's B pairs) up to which a loss builds the plain (rows x rows) logits matrix instead of the
#: tiled kernel, per device type. CPU: 0, never (benchmarks/losses.py: the tiled kernel is as fast at B = 256 and
#: faster from B = 1024 on the CPU). CUDA: 8192 (a 256 MiB float32 matrix, about 1 GiB at the peak of forward +
#: backward), a memory-conservative guess at where launch overhead stops favouring one big matrix, not a
#: measurement: benchmarks/gpu.py measures the cross-over on a GPU. Other types: 0.
DENSE_LOSS_ROWS = {"cpu": 0, CUDA_TYPE: 8192, MPS_TYPE: 0}


def dense_loss_rows(device) -> int:
    """The number of rows up to which a softmax loss on ``device`` uses the plain logits matrix (see
    :data:`DENSE_LOSS_ROWS`); 0 means always the tiled kernel.

    >>> dense_loss_rows(CPU)
    0
    """
    return DENSE_LOSS_ROWS.get(torch.device(device).type, 0)


def device_count(device) -> int:
    """How many devices of ``device``'s type this process sees: CUDA GPUs, 1 for the CPU or an Apple GPU.

    >>> device_count(CPU)
    1
    """
    dev = torch.device(device)
    if dev.type == CUDA_TYPE:
        return _cuda_count()
    return 1 if dev.type == "cpu" or (dev.type == MPS_TYPE and _mps()) else 0


def reset_peak_memory(device) -> None:
    """Start a new peak of :func:`peak_memory` on ``device`` (CUDA); a no-op elsewhere."""
    dev = torch.device(device)
    if dev.type == CUDA_TYPE:
        torch.cuda.reset_peak_memory_stats(dev)


def peak_memory(device) -> int | None:
    """Peak bytes allocated by torch on ``device`` since :func:`reset_peak_memory` (CUDA), or None where torch
    keeps no such count (the CPU: read the process's resident-set peak instead)."""
    dev = torch.device(device)
    if dev.type == CUDA_TYPE:
        return int(torch.cuda.max_memory_allocated(dev))
    return None


def free_cached_memory(device) -> None:
    """Hand the allocator's cached blocks on ``device`` back (after an out-of-memory error); a no-op elsewhere."""
    dev = torch.device(device)
    if dev.type == CUDA_TYPE:
        torch.cuda.empty_cache()


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation failure (a device's OutOfMemoryError, or the CPU's)."""
    return isinstance(error, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(error, RuntimeError) and ("out of memory" in str(error) or "allocate" in str(error)))


def device_name(device) -> str:
    """A readable name of ``device`` for reports: the GPU's model for CUDA, else the type (``cpu``, ``mps``)."""
    dev = torch.device(device)
    if dev.type == CUDA_TYPE:
        return torch.cuda.get_device_name(dev)
    return dev.type
