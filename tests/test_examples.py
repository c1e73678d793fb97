"""The scripts in examples/: each runs on a tiny budget and ends with its evaluation line, stays under 100 lines,
and is listed here and in examples/README.md (a new example without a test fails `test_every_example_is_covered`).

The run tests check that the numbers are there and sane (finite, in [0, 1]), not that two steps learned anything:
the default budgets do, and each docstring says what to expect. A script whose data is not installed (the loaders
raise FileNotFoundError naming the apt package) is skipped with that message, as the data tests do.
"""
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = ["--steps", "2"]

#: script -> (its tiny-budget arguments, the metric its last line names, the values that line reports); every
#: last line looks like "recall@10 trained=0.120 bm25=0.099 chance=0.00008".
LAST_LINES = {
    "simclr.py": (TINY, "knn_top1", {"trained", "untrained", "pixels"}),
    "moco.py": (TINY, "knn_top1", {"trained", "untrained", "pixels"}),
    "supcon.py": (TINY, "knn_top1", {"trained", "untrained", "pixels"}),
    "clip.py": (TINY, "recall@10", {"trained", "untrained", "chance"}),
    "pairs.py": (TINY, "recall@1", {"trained", "untrained", "bm25", "chance"}),
    "search.py": (TINY + ["--docs", "5000"], "recall@10", {"trained", "bm25", "chance"}),
}


def _scripts() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.py"))


def test_every_example_is_covered():
    assert _scripts() == sorted(LAST_LINES), "every examples/*.py needs an entry in LAST_LINES (and nothing else)"


def test_every_example_is_listed_in_the_readme():
    readme = (EXAMPLES / "README.md").read_text()
    assert [name for name in _scripts() if name not in readme] == []


@pytest.mark.parametrize("name", _scripts())
def test_example_is_short_and_documented(name):
    text = (EXAMPLES / name).read_text()
    assert len(text.splitlines()) < 100, f"{name} has {len(text.splitlines())} lines; examples stay under 100"
    assert text.startswith('"""') and "--steps" in text and f"python examples/{name}" in text


def parse_last_line(line: str) -> tuple[str, dict[str, float]]:
    """'knn_top1 trained=0.980 untrained=0.938' -> ('knn_top1', {'trained': 0.98, 'untrained': 0.938})."""
    metric, *pairs = line.split()
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        assert sep and key not in values, f"malformed or repeated {pair!r} in {line!r}"
        values[key] = float(value)
    return metric, values


def test_parse_last_line():
    assert parse_last_line("recall@1 trained=0.815 chance=0.0003") == ("recall@1", {"trained": 0.815, "chance": 3e-4})
    with pytest.raises(AssertionError):
        parse_last_line("recall@1 trained=0.8 trained=0.9")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LAST_LINES))
def test_example_runs_and_reports(name):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args, want_metric, want_keys = LAST_LINES[name]
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=EXAMPLES.parent, env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 and "FileNotFoundError" in proc.stderr and "apt-get install" in proc.stderr:
        pytest.skip(f"{name}: data not installed: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}:\n{proc.stderr[-3000:]}"
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, f"{name} printed nothing"
    metric, values = parse_last_line(lines[-1])
    assert (metric, set(values)) == (want_metric, want_keys), lines[-1]
    for key, value in values.items():
        assert math.isfinite(value) and 0.0 <= value <= 1.0, f"{name}: {key}={value} in {lines[-1]!r}"
