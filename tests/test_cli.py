"""The `contrastlab` command: version, help, the loss list and the demo."""

import subprocess
import sys

import pytest

import contrastlab
from contrastlab.cli import main
from contrastlab.demo import loss_table
from contrastlab.losses import LOSSES


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"contrastlab {contrastlab.__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "demo" in capsys.readouterr().out


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "contrastlab", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"contrastlab {contrastlab.__version__}"


def test_losses_lists_the_registry(capsys):
    assert main(["losses"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in LOSSES)


def test_demo_losses_see_the_structure_of_real_pairs():
    rows = loss_table(batch=128, dim=16, seed=3)
    assert {r["loss"] for r in rows} == set(LOSSES)
    assert all(r["matched"] < r["shuffled"] for r in rows), rows


@pytest.mark.parametrize("argv, message", [(["losses", "--demo", "--batch", "0"], "must be a positive integer, got 0"),
                                           (["losses", "--demo", "--batch", "5000"], "--batch must be <= 1797")])
def test_demo_rejects_bad_arguments(capsys, argv, message):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_dashboard_and_demo_commands_reach_the_server(monkeypatch, tmp_path):
    import contrastlab.dashboard as dash
    calls = []
    monkeypatch.setattr(dash, "dashboard", lambda runs, **kw: calls.append((list(runs), kw)) or 0)
    assert main(["dashboard", str(tmp_path / "a"), "--port", "0", "--no-browser"]) == 0
    assert calls[-1] == ([tmp_path / "a"], {"indexes": [], "host": "127.0.0.1", "port": 0, "open_browser": False})
    assert main(["dashboard", "--index", str(tmp_path / "i"), "--index", str(tmp_path / "j"), "--port", "0",
                 "--no-browser"]) == 0
    assert calls[-1] == ([], {"indexes": [tmp_path / "i", tmp_path / "j"], "host": "127.0.0.1", "port": 0,
                              "open_browser": False})

    started = []

    class FakeChild:
        pid = 1

        def __init__(self, cmd):
            started.append(cmd)

        def poll(self):
            return 0

    monkeypatch.setattr("subprocess.Popen", FakeChild)
    assert main(["demo", "--run", str(tmp_path / "d"), "--no-browser", "--port", "0", "--minutes", "0.5"]) == 0
    assert started[0][-7:] == ["simclr", "--data", "fashion-mnist", "--minutes", "0.5", "--run", str(tmp_path / "d")]
    assert calls[-1][0] == [tmp_path / "d"] and calls[-1][1]["port"] == 0


def test_eval_parts_must_fit_the_kind_of_run(tmp_path):
    """Choosing image parts for a text run (or --retrieval for an image run) is an error, not silently ignored."""
    import json

    import pytest

    from contrastlab.cli import main
    from contrastlab.train import evaluate_run
    rows = [{"query": f"q{i} w{i % 7}", "positive": f"d{i} w{i % 7}"} for i in range(60)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "text-run"
    assert main(["train", "pairs", "--data", str(data), "--steps", "2", "--run", str(run), "--no-eval", "--quiet",
                 "--set", "batch_size=16", "--set", "tokenizer=words"]) == 0
    with pytest.raises(ValueError, match=r"a text run is evaluated by retrieval .*\['knn'\] are for image runs"):
        evaluate_run(run, parts=["knn"], log=lambda *a: None)
