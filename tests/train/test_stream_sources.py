"""The WebDataset and HF-dataset sources load and train: a few steps of SimCLR on each, and streamed training on
shards (decoded by DataLoader workers) gives bit-identical weights to training on the same shards in memory."""
import io

import numpy as np
import pytest
import torch
import webdataset as wds
from datasets import ClassLabel, Dataset, Features, Image as HFImage
from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
from PIL import Image

from contrastlab.train import TrainConfig, Trainer

N, SIDE = 60, 12


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    was = are_progress_bars_disabled()
    disable_progress_bars()
    yield
    if not was:
        enable_progress_bars()


def _pngs(seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(N):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


@pytest.fixture
def shards(tmp_path):
    pngs = _pngs()
    for s in range(3):
        with wds.TarWriter(str(tmp_path / f"train-{s}.tar")) as sink:
            for i in range(s * 20, (s + 1) * 20):
                sink.write({"__key__": f"{i:03d}", "png": pngs[i], "cls": i % 3})
    return f"shards:{tmp_path}/train-{{0..2}}.tar"


@pytest.fixture
def hf(tmp_path):
    ds = Dataset.from_dict({"image": [{"bytes": b, "path": None} for b in _pngs(1)],
                            "label": [i % 3 for i in range(N)]},
                           features=Features({"image": HFImage(), "label": ClassLabel(names=["a", "b", "c"])}))
    ds.save_to_disk(str(tmp_path / "ds"))
    return f"hf:{tmp_path / 'ds'}"


def _config(data, **kw):
    return TrainConfig(method="simclr", data=data, steps=3, batch_size=16, seed=3, final_eval=False, probe_size=16,
                       monitor_bank=32, threads=1, hyperparameters={"proj_hidden_dim": 16, "proj_dim": 8}, **kw)


@pytest.mark.parametrize("source", ["shards", "hf"])
def test_each_source_loads_and_trains(source, request, tmp_path):
    data = request.getfixturevalue(source)
    trainer = Trainer.from_config(_config(data, stream=True, workers=0), tmp_path / "run", show_progress=False)
    assert trainer.data.streamed and len(trainer.data) == 50 and trainer.data.num_classes == 3
    trainer.fit()
    assert trainer.step == 3
    assert all(torch.isfinite(v).all() for v in trainer.method.state_dict().values() if v.is_floating_point())


def test_streamed_and_in_memory_shards_give_bit_identical_weights(shards, tmp_path):
    runs = {}
    for stream, workers in ((False, 0), (True, 2)):
        trainer = Trainer.from_config(_config(shards, stream=stream, workers=workers), tmp_path / f"run-{stream}",
                                      show_progress=False)
        assert trainer.data.streamed is stream
        trainer.fit()
        runs[stream] = trainer
    assert runs[True].data.x.read_ahead >= 2                          # the batches came from the workers
    mem, st = (runs[k].method.state_dict() for k in (False, True))
    assert mem.keys() == st.keys()
    for k, v in mem.items():
        assert torch.equal(v, st[k]), k
