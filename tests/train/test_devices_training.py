"""Training on a device: every tensor of a step lives on the trainer's device; one step of every method runs with
the model and batches on `meta` (a stand-in for a second device, so a tensor left on the CPU fails); `--device cpu`
and `auto` train, resume and evaluate, also a run whose checkpoint came from a GPU; clear errors for devices and
precisions this machine lacks."""
import dataclasses
import io
import json
import random

import pytest
import torch
from torch.overrides import TorchFunctionMode

from contrastlab import devices
from contrastlab.cli import main
from contrastlab.data import load_images
from contrastlab.data.text import PairData, TextData
from contrastlab.io import load_checkpoint, save_checkpoint
from contrastlab.methods import METHODS
from contrastlab.train import TrainConfig, Trainer
from contrastlab.train.trainer import _OnDevice
from tests.methods.test_clip import toy_data
from tests.train.test_resume import _killed, _train

META = torch.device("meta")


def test_meta_stands_in_for_a_second_device():
    mixed = r"Tensor on device (cpu|meta) is not on the expected device (meta|cpu)!"      # wording differs by version
    with pytest.raises(RuntimeError, match=mixed):
        torch.randn(4, 2) + torch.randn(4, 2, device="meta")
    with pytest.raises(RuntimeError, match=mixed):
        torch.nn.Linear(2, 3, device="meta")(torch.randn(4, 2))


# -- data for every kind a method trains on -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    return load_images("digits")


def _text_data():
    rng = random.Random(0)
    anchors = [" ".join(f"w{rng.randrange(50)}" for _ in range(5)) for _ in range(64)]
    return TextData("toy-text", PairData(anchors=anchors, positives=[a[::-1] for a in anchors]), None,
                    tokenizer="words")


def _data_for(name, digits, modality=None):
    cls = METHODS[name]
    modality = modality or cls.modalities[0]
    if modality == "image_text":
        return toy_data()
    if modality == "text":
        return _text_data()
    if modality == "sequence":
        from contrastlab.data import SequenceData
        g = torch.Generator().manual_seed(0)
        return SequenceData("toy-series", torch.randn(32, 2, 24, generator=g), torch.arange(32) % 2, None, None, None)
    assert modality == "image", f"add data of kind {modality!r} for method {name!r} to this test"
    return dataclasses.replace(digits, group=torch.arange(len(digits)) // 4) if cls.needs_groups else digits


#: every (method, kind of data it trains on)
METHOD_MODALITIES = sorted((name, m) for name, cls in METHODS.items() for m in cls.modalities)


def _trainer(name, digits, tmp_path, *, modality=None, **kw) -> Trainer:
    hp = {"queue_size": 64} if name == "moco" else {}
    cfg = TrainConfig(**{"method": name, "data": "toy", "steps": 2, "batch_size": 16, "final_eval": False,
                         "threads": 1, "hyperparameters": hp, "probe_size": 32, "monitor_bank": 64,
                         "checkpoint_minutes": 100.0, **kw})
    return Trainer.from_config(cfg, tmp_path / name, show_progress=False, data=_data_for(name, digits, modality))


def _tensors(trainer, batch) -> dict[str, torch.Tensor]:
    """Every tensor of a step: the method's parameters and buffers, the optimizer's state and the batch."""
    out = {f"method.{k}": t for k, t in [*trainer.method.named_parameters(), *trainer.method.named_buffers()]}
    for i, state in enumerate(trainer.optimizer.state.values()):
        out.update({f"optimizer.{i}.{k}": v for k, v in state.items() if torch.is_tensor(v)})

    def walk(prefix, obj):
        if torch.is_tensor(obj):
            out[prefix] = obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(obj, (list, tuple)):
            for k, v in enumerate(obj):
                walk(f"{prefix}.{k}", v)
    walk("batch", batch)
    return out


def _off_device(tensors: dict, device: torch.device) -> list[str]:
    # a scalar optimizer `step` may live on the CPU beside parameters anywhere (torch's own rule for non-fused Adam)
    return [f"{k} on {t.device}" for k, t in tensors.items()
            if t.device != device and not (k.endswith(".step") and t.dim() == 0)]


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_every_tensor_of_a_step_is_on_the_trainers_device(digits, tmp_path, device):
    trainer = _trainer("moco", digits, tmp_path, device=device)                # encoders, momentum encoder, queue
    trainer.fit()
    assert trainer.device == devices.resolve(device) and trainer.amp.device == trainer.device
    tensors = _tensors(trainer, trainer.make_batch(trainer.method, trainer.step))
    assert any(k.startswith("method.queue.") for k in tensors) and any(k.startswith("optimizer.") for k in tensors)
    assert _off_device(tensors, trainer.device) == []


# -- one step of every method on `meta` --------------------------------------------------------------------------
_T = torch.Tensor
_REDUCE = {_T.all: True, torch.all: True, _T.any: False, torch.any: False}
_READS = {_T.item, _T.__bool__, _T.__int__, _T.__float__, _T.__index__, _T.tolist}


class MetaReads(TorchFunctionMode):
    """Meta tensors have shapes but no values. Inside this mode the data-dependent reads of a training step (NaN
    checks, `.item()` for metrics, a queue's fill count, `torch.unique` / `bincount` / masks, whose output size
    depends on the values) get stand-in values: whole-tensor `all()` is True and `any()` False (every check passes),
    numbers read out are 1, unique values are as if all distinct, masks as if all set. Every other operation runs
    on meta for real, so a tensor on any other device still raises. For this test only."""

    def __init__(self):
        super().__init__()
        self.faked: set[str] = set()

    def __enter__(self):
        from torch.fx.experimental import _config
        self._was = _config.meta_nonzero_assume_all_nonzero
        _config.meta_nonzero_assume_all_nonzero = True
        return super().__enter__()

    def __exit__(self, *exc):
        from torch.fx.experimental import _config
        _config.meta_nonzero_assume_all_nonzero = self._was
        return super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        t = args[0] if args and torch.is_tensor(args[0]) else None
        if t is None or not t.is_meta:
            return func(*args, **kwargs)
        if func in _REDUCE and len(args) == 1 and not kwargs:
            self.faked.add(func.__name__)
            return torch.tensor(_REDUCE[func])
        if func in _READS:
            self.faked.add(func.__name__)
            if func is _T.tolist:
                return torch.ones(t.shape, dtype=t.dtype).tolist()
            return {_T.item: torch.ones((), dtype=t.dtype).item, _T.__bool__: lambda: True, _T.__int__: lambda: 1,
                    _T.__float__: lambda: 1.0, _T.__index__: lambda: 1}[func]()
        if func in (torch.unique, _T.unique):
            self.faked.add("unique")
            flat = t.reshape(-1)
            out = [torch.empty_like(flat)]
            if kwargs.get("return_inverse"):
                out.append(torch.empty_like(t, dtype=torch.long))
            if kwargs.get("return_counts"):
                out.append(torch.empty_like(flat, dtype=torch.long))
            return out[0] if len(out) == 1 else tuple(out)
        if func in (torch.bincount, _T.bincount):
            self.faked.add("bincount")
            w = kwargs.get("weights", args[1] if len(args) > 1 else None)
            n = max(t.numel(), int(kwargs.get("minlength", 0)))
            return torch.empty(n, dtype=w.dtype if w is not None else torch.long, device=t.device)
        return func(*args, **kwargs)


def _meta_step(trainer: Trainer, *, keep_on_cpu=None) -> dict:
    """Move the trainer to `meta` as its own constructor moves it to a device, then one step: the batch made by the
    trainer and moved to its device, forward, backward, the trainer's optimizer, the method's after-step. The views
    are made on the CPU here: augmentation branches on its random draws (which samples to blur, to shift in hue),
    and stand-in values for those would pick impossible branches; `test_views_are_made_on_the_device` covers it."""
    method = trainer.method
    trainer.device = META
    method.to(META)
    if keep_on_cpu is not None:
        keep_on_cpu(method)
    trainer.optimizer = trainer._optimizer(method)            # built after the move, as in Trainer.__init__
    with MetaReads():
        batch = trainer.make_batch(method, 0)
        out = method(batch)
        out.loss.backward()
        trainer.optimizer.step()
        method.after_step(step=1, total_steps=2)
    assert out.loss.device == META
    return batch


@pytest.mark.parametrize("name, modality", METHOD_MODALITIES)
def test_one_step_of_every_method_runs_on_meta(name, modality, digits, tmp_path):
    trainer = _trainer(name, digits, tmp_path, device="cpu", modality=modality)
    batch = _meta_step(trainer)
    tensors = _tensors(trainer, batch)
    assert any(k.startswith("optimizer.") for k in tensors)
    assert _off_device(tensors, META) == []


def test_a_tensor_left_on_the_cpu_fails_the_meta_step(digits, tmp_path):
    def queue_stays(method):
        method.queue.keys = method.queue.keys.to(devices.CPU)
    trainer = _trainer("moco", digits, tmp_path, device="cpu")
    with pytest.raises((RuntimeError, NotImplementedError), match="meta"):
        _meta_step(trainer, keep_on_cpu=queue_stays)


def test_views_are_made_on_the_device(digits, tmp_path):
    """The images reach the augmentation already on the trainer's device; its random draws stay on the step's CPU
    generator (so a seed gives the same views on every device) and are moved by the views code."""
    trainer = _trainer("simclr", digits, tmp_path, device="cpu")
    seen = []

    def spy(x, *, generator=None):
        seen.append((x.device, generator.device))
        return torch.empty(x.shape, dtype=torch.float32, device=x.device)     # meta has no values to augment
    trainer.device, trainer._batch_augment = META, _OnDevice(spy, META)
    batch = trainer.make_batch(trainer.method, 0)
    assert seen == [(META, devices.CPU)] and batch["views"].device == META
    x = digits.x[:4]                                           # the views code itself: CPU draws, images anywhere
    g = torch.Generator().manual_seed(0)
    params = trainer.augment.sample(*x.shape, generator=g)
    assert all(t is None or t.device == devices.CPU for t in vars(params).values())


def test_optimizer_state_loads_onto_the_parameters_device(digits, tmp_path):
    trainer = _trainer("simclr", digits, tmp_path, device="cpu")
    trainer.fit()
    state = trainer.optimizer.state_dict()
    trainer.method.to(META)
    opt = trainer._optimizer(trainer.method)
    opt.load_state_dict(state)                                 # what `Trainer._load` does after the move
    moved = [(k, v.device) for s in opt.state.values() for k, v in s.items() if torch.is_tensor(v) and k != "step"]
    assert moved and all(d == META for _, d in moved)


# -- the command line -----------------------------------------------------------------------------------------------
ARGS = ["simclr", "--data", "digits", "--steps", "12", "--seed", "5", "--no-eval", "--quiet",
        "--set", "batch_size=32", "--set", "checkpoint_every=4", "--set", "monitor_every=6",
        "--set", "proj_hidden_dim=32", "--set", "proj_dim=16", "--set", "threads=1"]


def _as_if_from_a_gpu(run) -> None:
    """Rewrite `run` as a CUDA machine would have written it: `device: cuda` in its settings, and a checkpoint whose
    every storage carries the location tag `cuda:0` (torch.save records each storage's device; we make it record
    the GPU's, so loading without `map_location` fails here exactly as a real GPU checkpoint does)."""
    cfg = json.loads((run / "config.json").read_text())
    cfg["train"]["device"] = "cuda"
    (run / "config.json").write_text(json.dumps(cfg))
    ckpt = run / "checkpoints" / "last.pt"
    state = load_checkpoint(ckpt)
    state["config"]["device"] = "cuda"
    tag = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"
    try:
        save_checkpoint(ckpt, state)
    finally:
        torch.serialization.location_tag = tag


def _run(*args):
    p = _train(*args)
    out, err = p.communicate()
    return p.returncode, out, err


@pytest.mark.slow
def test_cpu_and_auto_train_resume_and_evaluate_also_from_a_gpu_checkpoint(tmp_path):
    whole, moved = tmp_path / "whole", tmp_path / "moved"
    code, _, err = _run(*ARGS, "--device", "cpu", "--run", str(whole))
    assert code == 0, err
    _killed(_train(*ARGS, "--device", "auto", "--run", str(moved), fault={"point": "after-step", "at": 6}))
    _as_if_from_a_gpu(moved)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(io.BytesIO((moved / "checkpoints" / "last.pt").read_bytes()), weights_only=True)
        code, _, err = _run("--resume", str(moved))                       # its own device is not here: say so
        assert code == 2 and "`device` 'cuda' is not available" in err and "available: cpu" in err, err
    code, out, err = _run("--resume", str(moved), "--device", "auto")
    assert code == 0 and "resuming" in out and "at step 4 of 12" in out, err
    ref, got = load_checkpoint(whole / "checkpoints" / "last.pt"), load_checkpoint(moved / "checkpoints" / "last.pt")
    assert ref["step"] == got["step"] == 12
    for k, v in ref["method"].items():
        assert torch.equal(v, got["method"][k]), k                          # the same run, bit for bit
    for run, device in ((whole, "auto"), (moved, "cpu")):
        p = _eval(run, device)
        assert p[0] == 0, p[2]
        assert "knn_top1" in json.loads((run / "eval.json").read_text())


def _eval(run, device):
    import os
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-m", "contrastlab", "eval", str(run), "--knn", "--device", device],
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def _exit(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code, capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_exits_2_naming_it(tmp_path, capsys):
    base = ["train", "simclr", "--data", "digits", "--steps", "2", "--no-eval", "--quiet"]
    code, err = _exit([*base, "--device", "cuda", "--run", str(tmp_path / "a")], capsys)
    assert code == 2 and "`device` 'cuda' is not available: this torch build has no CUDA; available: cpu" in err
    assert not (tmp_path / "a").exists()                                     # refused before anything is written
    code, err = _exit([*base, "--set", "device=cuda:1", "--set", "precision=bf16", "--run", str(tmp_path / "b")],
                      capsys)
    assert code == 2 and "`device` 'cuda:1' is not available" in err
    code, err = _exit([*base, "--set", "device=tpu", "--run", str(tmp_path / "c")], capsys)
    assert code == 2 and "`device` must be one of auto, cpu, cuda, cuda:N, mps, got 'tpu'" in err
    code, err = _exit([*base, "--device", "cpu", "--set", "device=cpu", "--run", str(tmp_path / "d")], capsys)
    assert code == 2 and "give --device or --set device=..., not both" in err


def test_bf16_on_a_gpu_without_it_is_a_clear_error(digits, tmp_path, monkeypatch):
    from tests.test_devices import _fake_gpus
    _fake_gpus(monkeypatch, 1, bf16=False)
    with pytest.raises(ValueError, match=r"`precision` 'bf16' is not supported on 'cuda:0' \(Tesla V100"):
        _trainer("simclr", digits, tmp_path, device="cuda", precision="bf16")
