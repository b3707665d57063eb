"""The README's code runs, the benchmarks run, and the code stays ruff clean."""

from __future__ import annotations

import json
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


def test_zoo_table_overrides_win_over_its_cpu_sizes() -> None:
    """``zoo_table --override model.kwargs.dropout=0.3`` must reach the model it trains."""
    from hydra import compose, initialize_config_dir

    from benchmarks._table import CONFIGS
    from benchmarks.zoo_table import cell_overrides

    cell = {"model": "relational_transformer", "aug": "none", "seed": 0}
    base = ["data=zoo", "task=regression"]
    for extra, expected in [((), 0.0), (("model.kwargs.dropout=0.3",), 0.3)]:
        with initialize_config_dir(config_dir=CONFIGS, version_base=None):
            cfg = compose("config", overrides=cell_overrides(cell, base, 30, extra))
        assert cfg.model.kwargs.dropout == expected and cfg.model.kwargs.d_node == 32


def test_a_table_cache_cut_short_reruns_that_cell_and_a_damaged_one_is_refused(
    tmp_path: Path,
) -> None:
    from benchmarks._table import load_done

    out = tmp_path / "t.jsonl"
    good = [json.dumps({"key": k, "test_tau": 0.5}) for k in ("a", "b")]
    cut = good[0] + "\n" + good[1] + "\n" + '{"key": "c", "te'
    out.write_text(cut)
    assert set(load_done(out, repair=False)) == {"a", "b"} and out.read_text() == cut
    assert set(load_done(out)) == {"a", "b"}
    assert out.read_text() == good[0] + "\n" + good[1] + "\n"  # appending goes on cleanly
    out.write_text(good[0] + "\n" + good[1])  # killed before the newline: the line is kept
    assert set(load_done(out)) == {"a", "b"}
    assert out.read_text() == good[0] + "\n" + good[1] + "\n"
    for damaged in ("not json", '{"no key": 1}'):
        out.write_text(good[0] + "\n" + damaged + "\n" + good[1] + "\n")
        with pytest.raises(SystemExit, match="line 2 is not a result"):
            load_done(out)


def test_zoo_table_refuses_an_override_into_the_default_results() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.zoo_table", "--override", "model.kwargs.dropout=0.3",
         "--report-only"], cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode != 0 and "--override needs its own --out-dir" in out.stderr
