"""The README's code runs, the benchmarks run, and the code stays ruff clean."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ```python block of the README runs (```py blocks are illustrations needing files)."""
    from nngraph.data import build_store, load_source
    from nngraph.graph import ArchSpec

    store_path = tmp_path / "data" / "inrs" / "digits_views1.pt"  # where the README opens it
    build_store(load_source("digits").subset(10), ArchSpec.siren(), store_path, steps=50)
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2, "README lost its python examples"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_readme_quickstart_is_two_lines_and_ci_runs_the_test_line() -> None:
    text = (ROOT / "README.md").read_text()
    quickstart = text.split("## Quickstart", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = [ln for ln in quickstart.splitlines() if ln.strip()]
    assert len(lines) == 2
    assert lines[0].endswith("python train.py model=relational_transformer aug=siren_neg")
    assert lines[1] in (ROOT / ".ci" / "run").read_text().splitlines()


@pytest.mark.parametrize(
    "args",
    [
        ["benchmarks.graph_batch", "--batch", "8", "--repeats", "2"],
        ["benchmarks.fit", "--inrs", "4", "--naive-inrs", "1", "--steps", "2", "--repeats", "1"],
        ["benchmarks.augment", "--batch", "8", "--repeats", "2"],
        ["benchmarks.align", "--pairs", "3", "--inrs", "8", "--batch", "4", "--repeats", "2"],
        ["benchmarks.models", "--batch", "4", "--repeats", "1", "--widths", "8"],
        ["benchmarks.zoo", "--models", "8", "--naive-models", "2", "--steps", "2"],
        ["benchmarks.protocol_step", "--batch", "4", "--repeats", "1"],
        [
            "benchmarks.fit_sdf",
            "--shapes",
            "4",
            "--naive-shapes",
            "1",
            "--points",
            "64",
            "--steps",
            "2",
            "--repeats",
            "1",
        ],
    ],
    ids=lambda a: a[0],
)
def test_benchmarks_run_and_end_with_their_figure(args: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"(ratio|overhead)=-?\d+(\.\d+)?", last), last


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: pip install -e '.[dev]'")
    result = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_table_extra_overrides_win_over_the_cpu_budget() -> None:
    """``ssl_table --probe-points`` must reach the model: the CPU budget sets probe_points=0."""
    from hydra import compose, initialize_config_dir

    from benchmarks._table import CONFIGS, cell_overrides

    cell = {"model": "relational_transformer", "aug": "siren_neg", "seed": 1}
    for extra, expected in [((), 0), (("model.kwargs.probe_points=32",), 32)]:
        overrides = cell_overrides(cell, ["task=simclr"], 10, 5, False, extra)
        with initialize_config_dir(config_dir=CONFIGS, version_base=None):
            cfg = compose("config", overrides=overrides)
        assert cfg.model.kwargs.probe_points == expected


def test_ssl_table_refuses_nonsense_probe_points() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.ssl_table", "--probe-points", "0", "--report-only"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode != 0
    assert "--probe-points must be at least 1" in out.stderr
