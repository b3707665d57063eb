"""The training loop knows no task by name: a task defined here alone (regression of a property of
each INR, lower-is-better primary metric) trains through ``Trainer`` like the built-in
ones; and the layout the project card names (top-level configs shipped in the package, console
scripts, short functions) holds."""

from __future__ import annotations

import ast
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import nngraph
from nngraph.data import load_store
from nngraph.data.loader import GraphBatches
from nngraph.data.normalize import layer_stats
from nngraph.graph import to_params
from nngraph.models import MLPHead, build_model
from nngraph.tasks import EvalData, Evaluation, Task
from nngraph.train import TrainData, Trainer, TrainerSettings
from nngraph.train.logging import read_metrics

ROOT = Path(__file__).resolve().parents[1]


class OutputBias(Task):
    """Regress each INR's output bias (times 10) from its graph, reading the target from the real
    parameters of the batch: a property any encoder can learn, with a lower-is-better metric."""

    name = "output_bias"
    primary = "mse"
    higher_is_better = False

    def __init__(self, encoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = MLPHead(encoder.out_dim, 1, (32,))

    @staticmethod
    def target(batch) -> Tensor:
        return to_params(batch)[:, -1] * 10  # canonical order ends with the output bias

    def forward(self, batch) -> tuple[Tensor, dict[str, float]]:
        loss = F.mse_loss(self.head(self.encoder(batch).graph).squeeze(1), self.target(batch))
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def evaluate(self, data: EvalData, split: str) -> Evaluation:
        pred, target = [], []
        for batch in data.batches(split):
            pred.append(self.head(self.encoder(batch).graph).squeeze(1))
            target.append(self.target(batch))
        p, t = torch.cat(pred), torch.cat(target)
        mse = F.mse_loss(p, t).item()
        return Evaluation({"mse": mse, "r2": 1 - mse / t.var().item()}, {"pred": p, "target": t})


@pytest.fixture(scope="module")
def store(digits8_path):
    return load_store(digits8_path)


def _trainer(store, run_dir: Path, **settings: Any) -> Trainer:
    torch.manual_seed(0)
    rows = store.indices("train")
    evals = {s: GraphBatches(store, store.indices(s), 128) for s in ("train", "val", "test")}
    data = TrainData(store.spec, rows, GraphBatches(store, rows, 64), evals)
    encoder = build_model("mlp", store.spec, hidden=64, out_dim=32)
    encoder.set_input_stats(layer_stats(store.params[rows], store.spec))
    task = OutputBias(encoder)
    optimizer = torch.optim.AdamW(task.parameters(), lr=2e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return Trainer(task, data, optimizer, scheduler, run_dir, TrainerSettings(**settings))


def test_a_task_defined_in_a_test_trains_through_the_loop(store, tmp_path: Path) -> None:
    trainer = _trainer(store, tmp_path, epochs=8, progress=False)
    trainer.fit()
    summary = trainer.test({"task": "output_bias"})
    lines = read_metrics(tmp_path / "metrics.jsonl")
    assert len(lines) == 8 and {"val_mse", "val_r2"} <= set(lines[0])
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    # lower is better: the best checkpoint is the one with the smallest validation error
    best = min(lines, key=lambda r: r["val_mse"])
    assert summary["best_step"] == best["step"] and summary["val_mse"] == best["val_mse"]
    assert summary["test_r2"] > 0.5, summary  # it learned the property, not the mean
    outputs = torch.load(tmp_path / "test_outputs.pt", weights_only=True)
    assert outputs["pred"].shape == outputs["target"].shape == (len(store.indices("test")),)


def test_the_toy_task_resumes_exactly(store, tmp_path: Path) -> None:
    whole = _trainer(store, tmp_path / "whole", epochs=3, progress=False)
    whole.fit()
    first = _trainer(store, tmp_path / "a", epochs=3, max_steps=30, progress=False)
    first.fit()
    second = _trainer(store, tmp_path / "b", epochs=3, progress=False)
    second.resume(tmp_path / "a")
    second.fit()
    for a, b in zip(whole.task.state_dict().values(), second.task.state_dict().values()):
        assert torch.equal(a, b)


def test_configs_live_at_the_top_level_only() -> None:
    assert nngraph.config_dir() == ROOT / "configs"
    for group in ("model/relational_transformer", "aug/mixup_align", "task/classification"):
        assert (ROOT / "configs" / f"{group}.yaml").is_file()
    copies = [p for p in ROOT.rglob("relational_transformer.yaml") if ".git" not in p.parts]
    skip = {"outputs", "multirun", ".venv", "build"}  # run folders and build outputs
    copies = [p for p in copies if not skip & set(p.relative_to(ROOT).parts)]
    assert copies == [ROOT / "configs" / "model" / "relational_transformer.yaml"]


def test_pyproject_ships_every_package_the_configs_and_the_commands() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(project["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in ROOT.glob("nngraph/**/__init__.py")
    }
    assert listed == found | {"nngraph.configs"}, "a package is missing from pyproject.toml"
    assert project["tool"]["setuptools"]["package-dir"] == {"nngraph.configs": "configs"}
    scripts = project["project"]["scripts"]
    assert set(scripts) == {"nngraph-train", "nngraph-fit", "nngraph-zoo"}


def test_the_wheel_holds_the_configs(tmp_path: Path) -> None:
    import shutil
    import subprocess

    source = tmp_path / "src"  # a copy: building writes build/ and egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("nngraph", "configs"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if build.returncode != 0 and "No module named" in build.stderr:
        pytest.skip(f"cannot build a wheel here: {build.stderr.strip().splitlines()[-1]}")
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("nngraph-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for group in ("model/relational_transformer", "aug/mixup_align", "task/classification"):
        assert f"nngraph/configs/{group}.yaml" in names
    assert "nngraph/configs/config.yaml" in names and "nngraph/configs/fit.yaml" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "nngraph-train = nngraph.train.__main__:main" in text
    assert "nngraph-fit = nngraph.fit:main" in text


def test_no_function_in_the_library_is_longer_than_80_lines() -> None:
    long = []
    for path in sorted((ROOT / "nngraph").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length})")
    assert not long, f"functions over 80 lines: {long}"


def test_every_public_function_of_the_library_is_typed() -> None:
    untyped = []
    for path in sorted((ROOT / "nngraph").rglob("*.py")):
        tree = ast.parse(path.read_text())
        functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            if not cls.name.startswith("_"):
                functions += [m for m in cls.body if isinstance(m, ast.FunctionDef)]
        for fn in functions:
            if fn.name.startswith("_") and fn.name != "__init__":
                continue
            a = fn.args
            params = [
                p for p in a.posonlyargs + a.args + a.kwonlyargs if p.arg not in ("self", "cls")
            ]
            params += [p for p in (a.vararg, a.kwarg) if p is not None]
            missing = [p.arg for p in params if p.annotation is None]
            if fn.returns is None and fn.name != "__init__":
                missing.append("return")
            if missing:
                untyped.append(f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name} {missing}")
    assert not untyped, f"public functions without type hints: {untyped}"


def test_a_task_is_found_by_config_name_or_dotted_path() -> None:
    from nngraph.tasks import TASKS, task_class

    assert task_class("classification") is TASKS["classification"]
    assert task_class("tests.test_trainer.OutputBias") is OutputBias
    for bad in ("regresion", "tests.test_trainer.nothing", "torch.nn.Linear"):
        with pytest.raises(ValueError, match="unknown task.*classification, regression, simclr"):
            task_class(bad)
