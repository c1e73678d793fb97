"""benchmarks/gpu.py: the CPU smoke run (`--device cpu --smoke`) prints its one table, every loss path agrees with
the plain logits matrix, the 2-process check (Gloo here) finds the one-process loss; and the cross-over logic."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_cpu_smoke_run_prints_the_table(tmp_path):
    out = tmp_path / "gpu.json"
    p = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--smoke", "--dist-check", "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    table = p.stdout
    for heading in ("### SimCLR ResNet-18", "| precision | ours images/s | plain images/s", "### NT-Xent kernels",
                    "| B pairs | auto path | dense time", "Measured cross-over:", "2-process check (gloo"):
        assert heading in table, (heading, table)
    assert "1. training throughput" in p.stderr and "2. loss kernels" in p.stderr     # progress, on stderr
    res = json.loads(out.read_text())
    assert [r["precision"] for r in res["training"]] == ["fp32", "bf16"]
    assert all(r[k]["images_per_s"] > 0 for r in res["training"] for k in ("ours", "plain"))
    assert [r["B"] for r in res["losses"]] == [64, 256, 1024]
    for r in res["losses"]:
        assert r["auto"] == "tiled"                                   # the CPU's threshold is 0 rows
        plain = r["plain"]["loss"]
        for path in ("dense", "tiled"):                               # float32: agree with the plain matrix
            assert r[path]["loss"] == pytest.approx(plain, rel=1e-5)
    two = res["two_processes"]
    assert two["equal"] and two["loss_abs_diff"] < 1e-10 and len(two["ranks"]) == 2


def test_crossover_reads_the_measured_times():
    gpu = _module()
    row = lambda b, dense, tiled: {"B": b, "dense": dense, "tiled": tiled}          # noqa: E731
    t = lambda s: {"time_s": s}                                                     # noqa: E731
    rows = [row(1024, t(1.0), t(2.0)), row(2048, t(2.0), t(1.5)), row(4096, {"error": "OOM"}, t(3.0))]
    assert [gpu._faster(r) for r in rows] == ["dense", "tiled", "tiled"]
    assert gpu.crossover(rows) == "tiled is faster from B = 2048 (4096 rows) on"
    assert gpu.crossover(rows[1:]) == "tiled is faster at every measured B (from 2048)"
    assert gpu.crossover(rows[:1]) == "dense is faster up to the largest measured B = 1024"
    flip = [row(1024, t(2.0), t(1.0)), row(2048, t(1.0), t(2.0)), row(4096, t(3.0), t(1.0))]   # noise: last run wins
    assert gpu.crossover(flip) == "tiled is faster from B = 4096 (8192 rows) on"
    assert gpu.crossover([]) == "not measured"
