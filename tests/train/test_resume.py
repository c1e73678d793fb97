"""A run killed with SIGKILL and resumed ends exactly where an uninterrupted run ends; bad runs fail clearly.

The runs kill themselves at a named point (`contrastlab.faults`: after step N, during the Nth checkpoint write, right
after the run directory is made), so every test synchronises on an event of the run and none races the clock."""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from contrastlab.io import CheckpointError, load_checkpoint
from contrastlab.train.rundir import RunDir

ARGS = ["simclr", "--data", "digits", "--steps", "40", "--seed", "3", "--no-eval", "--quiet",
        "--set", "batch_size=64", "--set", "checkpoint_every=7", "--set", "monitor_every=9", "--set", "log_every=3",
        "--set", "proj_hidden_dim=64", "--set", "proj_dim=32", "--set", "threads=1"]


def _train(*args, fault=None, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("CONTRASTLAB_FAULT", None)
    if fault is not None:
        env["CONTRASTLAB_FAULT"] = json.dumps(fault)
    return subprocess.Popen([sys.executable, "-m", "contrastlab", "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _killed(proc) -> None:
    out, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err[-3000:])


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _final(run: Path):
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    lines = _metrics(run)
    train = [(r["step"], r["loss"], r["lr"]) for r in lines if r["kind"] == "train"]
    monitor = [(r["step"], r.get("knn_top1"), r["alignment"], r["uniformity"]) for r in lines if r["kind"] == "monitor"]
    snaps = sorted(p.name for p in (run / "snapshots").glob("step-*.npz"))
    return state, train, monitor, snaps


def _assert_same_run(whole: Path, resumed: Path) -> None:
    s_ref, train_ref, mon_ref, snaps_ref = _final(whole)
    s_res, train_res, mon_res, snaps_res = _final(resumed)
    assert s_ref["step"] == s_res["step"] == 40
    for k, v in s_ref["method"].items():
        assert torch.equal(v, s_res["method"][k]), k                 # bit-identical weights, BN stats, ...
    assert train_res == train_ref                                    # no duplicated or missing lines
    assert mon_res == mon_ref and snaps_res == snaps_ref
    assert json.loads((resumed / "status.json").read_text())["state"] == "done"


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted run every resumed run must end at."""
    run = tmp_path_factory.mktemp("whole") / "run"
    p = _train(*ARGS, "--run", str(run))
    out, err = p.communicate()
    assert p.returncode == 0, err
    return run


@pytest.mark.slow
def test_sigkill_between_checkpoints_resumes_to_the_uninterrupted_run(tmp_path, whole):
    killed = tmp_path / "killed"
    _killed(_train(*ARGS, "--run", str(killed), fault={"point": "after-step", "at": 24}))
    assert load_checkpoint(killed / "checkpoints" / "last.pt")["step"] == 21
    assert max(r["step"] for r in _metrics(killed)) == 24             # lines past the checkpoint, to be dropped
    assert RunDir(killed).read_status()["state"] == "stopped"        # not "running" forever
    resumed = _train("--resume", str(killed))
    out, err = resumed.communicate()
    assert resumed.returncode == 0, err
    assert f"resuming {killed} at step 21 of 40" in out
    _assert_same_run(whole, killed)


@pytest.mark.slow
def test_sigkill_during_a_checkpoint_write_leaves_no_temporary_after_resume(tmp_path, whole):
    killed = tmp_path / "killed"                                     # writes of last.pt: steps 0, 7, 14 (killed)
    _killed(_train(*ARGS, "--run", str(killed), fault={"point": "atomic-write", "at": "last.pt", "nth": 3}))
    leftovers = list((killed / "checkpoints").glob(".last.pt.*.tmp"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0
    assert load_checkpoint(killed / "checkpoints" / "last.pt")["step"] == 7
    resumed = _train("--resume", str(killed))
    out, err = resumed.communicate()
    assert resumed.returncode == 0, err
    assert "removed 1 temporary file(s)" in err
    assert list((killed / "checkpoints").glob(".*.tmp")) == []
    _assert_same_run(whole, killed)


@pytest.mark.slow
def test_ctrl_c_in_the_middle_of_a_step_keeps_the_last_checkpoint(tmp_path, whole):
    """An interrupt after step 24's update but before the step is counted must not save that half-done state."""
    stopped = tmp_path / "stopped"
    p = _train(*ARGS, "--run", str(stopped), fault={"point": "after-update", "at": 24, "signal": "SIGINT"})
    out, err = p.communicate()
    assert p.returncode == 130, err
    assert load_checkpoint(stopped / "checkpoints" / "last.pt")["step"] == 21
    assert json.loads((stopped / "status.json").read_text())["state"] == "interrupted"
    resumed = _train("--resume", str(stopped))
    out, err = resumed.communicate()
    assert resumed.returncode == 0, err
    _assert_same_run(whole, stopped)


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_restarts_in_its_folder(tmp_path, whole):
    killed = tmp_path / "killed"
    _killed(_train(*ARGS, "--run", str(killed), fault={"point": "run-created"}))
    assert not (killed / "checkpoints" / "last.pt").exists()
    assert RunDir(killed).read_status()["state"] == "stopped"
    resumed = _train("--resume", str(killed))
    out, err = resumed.communicate()
    assert resumed.returncode == 0, err
    assert f"restarting {killed} from step 0" in out
    _assert_same_run(whole, killed)
    again = tmp_path / "again"                                       # or a new run given the same --run
    _killed(_train(*ARGS, "--run", str(again), fault={"point": "run-created"}))
    p = _train(*ARGS, "--run", str(again))
    out, err = p.communicate()
    assert p.returncode == 0, err
    assert "stopped before its first checkpoint; starting it over" in err
    _assert_same_run(whole, again)


def test_a_new_run_over_an_unstarted_text_run_fits_its_own_tokenizer(tmp_path):
    def pairs(path, prefix):
        rows = [{"query": f"{prefix}q{i} {prefix}w{i % 7}", "positive": f"{prefix}d{i} {prefix}v{i % 5}"}
                for i in range(200)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path
    run = tmp_path / "run"
    args = ["pairs", "--steps", "2", "--no-eval", "--quiet", "--set", "batch_size=32", "--set", "tokenizer=words",
            "--run", str(run)]
    _killed(_train(*args, "--data", str(pairs(tmp_path / "a.jsonl", "alpha")), fault={"point": "run-created"}))
    assert "alphaq1" in (run / "tokenizer.json").read_text()                  # the stopped run's tokenizer
    p = _train(*args, "--data", str(pairs(tmp_path / "b.jsonl", "gamma")))
    out, err = p.communicate()
    assert p.returncode == 0, err
    vocab = (run / "tokenizer.json").read_text()
    assert "gammaq1" in vocab and "alphaq1" not in vocab                     # fitted anew on the new run's texts


@pytest.mark.slow
def test_the_first_checkpoint_is_written_before_the_first_step(tmp_path):
    """Default settings (checkpoints every 2 minutes): a run killed after 3 steps still resumes."""
    run = tmp_path / "run"
    args = ["simclr", "--data", "digits", "--steps", "6", "--no-eval", "--quiet", "--set", "batch_size=32",
            "--set", "proj_hidden_dim=16", "--set", "proj_dim=8", "--run", str(run)]
    _killed(_train(*args, fault={"point": "after-step", "at": 3}))
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 0
    p = _train("--resume", str(run))
    out, err = p.communicate()
    assert p.returncode == 0, err
    assert f"resuming {run} at step 0 of 6" in out
    assert [r["step"] for r in _metrics(run) if r["kind"] == "monitor"].count(0) == 1   # no repeated step-0 monitor


def test_a_live_run_is_not_resumed_twice(tmp_path):
    run = tmp_path / "run"
    args = ["simclr", "--data", "digits", "--steps", "4", "--no-eval", "--quiet", "--set", "batch_size=32",
            "--set", "proj_hidden_dim=16", "--set", "proj_dim=8", "--run", str(run)]
    first = _train(*args, fault={"point": "after-step", "at": 2, "signal": "SIGSTOP"})
    try:
        # wait for the stop itself (an event), then try to resume the paused, still-alive run
        _, status = os.waitpid(first.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status)
        p = _train("--resume", str(run))
        out, err = p.communicate()
        assert p.returncode == 2 and f"is being trained by process {first.pid}" in err and "Traceback" not in err
    finally:
        first.kill()
        first.communicate()


def test_a_diverged_run_says_so_and_keeps_a_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    p = _train("simclr", "--data", "digits", "--steps", "30", "--no-eval", "--quiet", "--set", "batch_size=32",
               "--set", "lr=1e8", "--set", "warmup=0", "--set", "proj_hidden_dim=16", "--set", "proj_dim=8",
               "--set", "checkpoint_every=1", "--run", str(run))
    out, err = p.communicate()
    assert p.returncode == 1, err
    assert "training diverged" in err and "Traceback" not in err, err
    ckpt = run / "checkpoints" / "last.pt"
    assert f"the last good checkpoint is {ckpt}" in err
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and "diverged" in status["reason"]
    state = load_checkpoint(ckpt)
    assert all(torch.isfinite(v).all() for v in state["method"].values() if v.is_floating_point())


def test_a_foreign_checkpoint_is_refused(tmp_path):
    base = ["simclr", "--data", "digits", "--no-eval", "--quiet", "--set", "batch_size=32",
            "--set", "proj_hidden_dim=16", "--set", "proj_dim=8"]
    runs = {name: tmp_path / name for name in ("a", "b", "twin")}
    for name, extra in (("a", ["--steps", "3", "--seed", "1"]), ("b", ["--steps", "5", "--seed", "3"]),
                        ("twin", ["--steps", "3", "--seed", "1"])):
        p = _train(*base, *extra, "--run", str(runs[name]))
        assert p.wait() == 0, p.communicate()
    for source, target, why in (("a", "b", "seed: 1 in the checkpoint, 3 in the run"), ("a", "twin", "run id")):
        shutil.copy(runs[source] / "checkpoints" / "last.pt", runs[target] / "checkpoints" / "last.pt")
        p = _train("--resume", str(runs[target]))
        out, err = p.communicate()
        assert p.returncode == 2 and "belongs to another run" in err and why in err, err
        assert "Traceback" not in err


def test_run_pointing_at_a_file_is_a_clear_error(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("not a folder")
    for run in (f, f / "below"):
        p = _train("simclr", "--data", "digits", "--steps", "2", "--run", str(run))
        out, err = p.communicate()
        assert p.returncode == 2 and "`--run` must be a directory" in err and "Traceback" not in err, err


def test_quiet_silences_the_evaluation_progress_bars(tmp_path, capsys, monkeypatch):
    from contrastlab.cli import main
    import importlib
    monkeypatch.setattr(importlib.import_module("contrastlab.eval.embed"), "PROGRESS_MIN_ROWS", 0)
    monkeypatch.setattr(importlib.import_module("contrastlab.train.evaluate"), "DEFAULT_PARTS", ("knn",))               # every embedding pass would show its bar
    args = ["train", "simclr", "--data", "digits", "--steps", "2", "--set", "batch_size=32",
            "--set", "proj_hidden_dim=16", "--set", "proj_dim=8", "--run"]
    assert main([*args, str(tmp_path / "loud")]) == 0
    assert "embed" in capsys.readouterr().err                        # the bar exists without --quiet ...
    assert main([*args, str(tmp_path / "quiet"), "--quiet"]) == 0
    assert "embed" not in capsys.readouterr().err                    # ... and --quiet silences it


def test_bad_inputs_give_clear_errors(tmp_path):
    def run(*args):
        p = _train(*args)
        out, err = p.communicate()
        return p.returncode, err

    code, err = run("simclr", "--data", "digits", "--steps", "5", "--set", "tempreature=0.1", "--run", str(tmp_path / "a"))
    assert code == 2 and "--set tempreature: unknown key" in err and "Traceback" not in err
    code, err = run("simclr", "--data", "digits", "--steps", "5", "--set", "batch_size=0", "--run", str(tmp_path / "a"))
    assert code == 2 and "`batch_size` must be an int >= 2, got 0" in err
    code, err = run("simclr", "--data", "digits", "--steps", "5", "--set", "temperature=-1", "--run", str(tmp_path / "a"))
    assert code == 2 and "`temperature` must be > 0, got -1.0" in err
    code, err = run("simclr", "--data", str(tmp_path / "missing.npz"), "--steps", "5", "--run", str(tmp_path / "a"))
    assert code == 2 and "missing.npz" in err and "Traceback" not in err
    code, err = run("--resume", str(tmp_path / "nothing"))
    assert code == 2 and "is not a run directory" in err
    code, err = run("simclr", "--resume", str(tmp_path / "nothing"))
    assert code == 2 and "do not also give method" in err
    code, err = run("simclr", "--data", "digits", "--run", str(tmp_path / "a"))
    assert code == 2 and "give a budget" in err


def test_truncated_and_foreign_checkpoints_are_refused(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"format": 1, "step": 3}, good)
    assert load_checkpoint(good)["step"] == 3
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(trunc)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(junk)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list"):
        load_checkpoint(tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="lacks \\['method'\\]"):
        load_checkpoint(good, required=("method",))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")


def test_resume_from_a_truncated_checkpoint_is_a_clear_error(tmp_path):
    run = tmp_path / "run"
    p = _train("simclr", "--data", "digits", "--steps", "3", "--no-eval", "--quiet", "--set", "batch_size=32",
               "--run", str(run))
    assert p.wait() == 0, p.communicate()
    ckpt = run / "checkpoints" / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    p = _train("--resume", str(run))
    out, err = p.communicate()
    assert p.returncode == 2 and "is truncated or corrupt" in err and "Traceback" not in err
    p = _train("simclr", "--data", "digits", "--steps", "3", "--run", str(run))
    out, err = p.communicate()
    assert p.returncode == 2 and "already holds a run; resume it with" in err
