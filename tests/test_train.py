"""The main job: training lowers the loss and writes its run, resume after a kill ends where an
uninterrupted run ends, SimCLR's probe beats chance, 2-process DDP matches 1 process, and bad
configs fail with messages that say what to do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from nngraph.train.logging import read_metrics
from nngraph.train.run import run

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = str(ROOT / "configs")
SMALL_RT = [
    "model.kwargs.n_layers=2",
    "model.kwargs.d_node=32",
    "model.kwargs.d_edge=8",
    "model.kwargs.d_attn=16",
    "model.kwargs.d_node_hidden=32",
    "model.kwargs.d_edge_hidden=16",
    "model.kwargs.heads=2",
    "model.kwargs.fourier_dim=16",
    "model.kwargs.probe_points=32",
]


@pytest.fixture(scope="module")
def store_path(digits8_path) -> Path:
    return digits8_path  # tests/conftest.py: all digits as 2-8-8-1 SIRENs


def overrides(store_path: Path, *extra: str) -> list[str]:
    return [
        f"data.path={store_path}",
        "trainer.progress=false",
        "trainer.batch_size=64",
        "seed=0",
        *extra,
    ]


def run_config(store_path: Path, run_dir: Path, *extra: str) -> dict:
    with initialize_config_dir(config_dir=CONFIGS, version_base=None):
        cfg = compose("config", overrides=overrides(store_path, *extra))
    return run(cfg, run_dir)


def cli(store_path: Path, run_dir: Path, *extra: str, launcher=(sys.executable,)) -> list[str]:
    args = [*launcher, str(ROOT / "train.py"), *overrides(store_path, *extra)]
    return [*args, f"hydra.run.dir={run_dir}"]


def test_training_lowers_the_loss_and_writes_the_run(store_path, tmp_path):
    summary = run_config(store_path, tmp_path, "model=mlp", "trainer.epochs=6")
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert len(records) == 6
    assert records[-1]["train_loss"] < 0.7 * records[0]["train_loss"]
    for name in ("config.yaml", "last.pt", "best.pt", "summary.json", "test_outputs.pt"):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["test_acc"] == summary["test_acc"] and 0 <= saved["test_acc"] <= 1
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["state"]["step"] == summary["steps"]


def test_a_stop_on_an_evaluation_step_is_logged_once(store_path, tmp_path):
    run_config(store_path, tmp_path, "model=mlp", "trainer.max_steps=4", "trainer.eval_every=2")
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [2, 4]
    assert all(r["train_loss"] > 0 for r in records)


def test_graph_model_learns_far_above_chance(store_path, tmp_path):
    summary = run_config(
        store_path, tmp_path, "model=relational_transformer", *SMALL_RT, "aug=siren_neg"
    )
    assert summary["test_acc"] > 0.2  # chance is 0.1 (measured: 0.35)


def test_resume_after_a_kill_ends_like_an_uninterrupted_run(store_path, tmp_path):
    extra = ("model=mlp", "trainer.epochs=20", "aug=siren_neg")
    whole = tmp_path / "whole"
    subprocess.run(cli(store_path, whole, *extra), check=True, capture_output=True)
    cut = tmp_path / "cut"
    proc = subprocess.Popen(cli(store_path, cut, *extra), stdout=subprocess.DEVNULL)
    metrics = cut / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (cut / "summary.json").exists(), "the run ended before it could be killed"
    resumed = subprocess.run(
        cli(store_path, cut, *extra, f"trainer.resume={cut}"), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout
    a = json.loads((whole / "summary.json").read_text())
    b = json.loads((cut / "summary.json").read_text())
    for key in ("steps", "best_step", "val_acc", "test_acc", "test_loss"):
        assert a[key] == b[key], key
    last_a, last_b = read_metrics(whole / "metrics.jsonl")[-1], read_metrics(metrics)[-1]
    assert last_a["train_loss"] == last_b["train_loss"]


def test_simclr_linear_probe_beats_chance(store_path, tmp_path):
    summary = run_config(
        store_path,
        tmp_path,
        "task=simclr",
        "model=relational_transformer",
        *SMALL_RT,
        "aug=[siren_neg,translate]",
        "trainer.epochs=3",
    )
    assert summary["task"] == "simclr"
    assert summary["test_acc"] > 0.2  # linear probe on frozen embeddings; chance is 0.1


def test_two_process_ddp_matches_one_process(store_path, tmp_path):
    extra = ("model=dws", "model.kwargs.hidden=8", "model.kwargs.n_layers=2", "trainer.epochs=3",
             "model.kwargs.norm=false")  # batch statistics differ per process on CPU  # fmt: skip
    single = tmp_path / "single"
    subprocess.run(cli(store_path, single, *extra), check=True, capture_output=True)
    ddp = tmp_path / "ddp"
    launcher = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        cli(store_path, ddp, *extra, launcher=launcher), capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    a, b = read_metrics(single / "metrics.jsonl"), read_metrics(ddp / "metrics.jsonl")
    assert len(a) == len(b) == 3
    for ra, rb in zip(a, b):
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=1e-4)
    assert json.loads((ddp / "summary.json").read_text())["device"] == "cpu x2"


def test_unknown_model_lists_the_available_ones(store_path, tmp_path):
    out = subprocess.run(cli(store_path, tmp_path, "model=nope"), capture_output=True, text=True)
    assert out.returncode != 0
    for name in ("dws", "mlp", "pna", "relational_transformer"):
        assert name in out.stderr


def test_data_model_mismatch_is_a_clear_error(store_path, tmp_path):
    arch = "+model.arch={layer_sizes:[2,8,8,8,1],activation:sine,w0:30.0,out_offset:0.5}"
    out = subprocess.run(
        cli(store_path, tmp_path, "model=mlp", arch), capture_output=True, text=True
    )
    assert out.returncode == 1
    assert "data/model mismatch" in out.stderr and "Traceback" not in out.stderr


def test_wandb_logger_runs_offline_into_the_run_directory(store_path, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)  # the config's offline mode decides
    run_config(store_path, tmp_path, "model=mlp", "trainer.epochs=1", "logger=wandb")
    assert list((tmp_path / "wandb").glob("offline-run-*")), "no offline wandb run was written"
