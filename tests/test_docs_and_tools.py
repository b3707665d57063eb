"""The README's code runs, the benchmarks run, and the code stays ruff clean."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_readme_api_tour_runs() -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_readme_quickstart_is_two_lines_and_ci_runs_the_test_line() -> None:
    text = (ROOT / "README.md").read_text()
    quickstart = text.split("## Quickstart", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = [ln for ln in quickstart.splitlines() if ln.strip()]
    assert len(lines) == 2
    assert lines[1] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_graph_batch_benchmark_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.graph_batch", "--batch", "8", "--repeats", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"ratio=\d+(\.\d+)?", last), last


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: pip install -e '.[dev]'")
    result = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
