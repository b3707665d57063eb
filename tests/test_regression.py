"""Predicting a CNN's accuracy from its weights: the metrics, StatNN's features and invariance,
and ``train.py data=zoo task=regression`` learning far above chance (Kendall's tau 0) with the
graph models, MixUp of targets, and the errors of a wrong task or target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from nngraph.data.store import load_store
from nngraph.graph import ArchSpec, random_relabel, to_graph_batch
from nngraph.models import build_model
from nngraph.models.statnn import layer_statistics, statnn_baseline
from nngraph.tasks.regression import regression_metrics
from nngraph.train.run import run
from nngraph.zoo.build import build_zoo
from nngraph.zoo.train import HYPERPARAMETERS
from tests.helpers import tiny_source

ROOT = Path(__file__).resolve().parents[1]
SPEC = ArchSpec.cnn((1, 4, 6), (5, 3), 3, stride=[1, 2])


@pytest.fixture(scope="module")
def zoo_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("zoo") / "zoo.pt"
    ranges = {**HYPERPARAMETERS, "epochs": ("int", 3, 12)}
    build_zoo(tiny_source(), SPEC, path, runs=120, chunk_runs=120, batch_size=16,
              hyperparameters=ranges, progress=False)  # fmt: skip
    return path


def train(zoo_path: Path, run_dir: Path, *extra: str) -> dict:
    overrides = ["data=zoo", f"data.path={zoo_path}", "task=regression", "trainer.progress=false",
                 "trainer.batch_size=32", "seed=0", *extra]  # fmt: skip
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        cfg = compose("config", overrides=overrides)
    return run(cfg, run_dir)


def test_regression_metrics() -> None:
    y = torch.tensor([0.1, 0.5, 0.2, 0.9])
    perfect = regression_metrics(y, y)
    assert perfect == {"tau": pytest.approx(1.0), "r2": pytest.approx(1.0), "rmse": 0.0}
    assert regression_metrics(-y, y)["tau"] == pytest.approx(-1.0)
    constant = regression_metrics(torch.full((4,), 0.3), y)
    assert constant["tau"] == 0.0 and constant["r2"] < 0
    assert regression_metrics(y + 0.1, y)["rmse"] == pytest.approx(0.1)


def test_layer_statistics_are_numpys_and_invariant_to_relabeling() -> None:
    params = torch.randn(3, SPEC.num_params)
    stats = layer_statistics(params, SPEC)
    w0 = params[1, : 4 * 1 * 9].numpy()
    want = [w0.mean(), w0.std(), *np.quantile(w0, [0, 0.25, 0.5, 0.75, 1])]
    np.testing.assert_allclose(stats[1, :7].numpy(), want, rtol=1e-5, atol=1e-6)
    g = to_graph_batch(params, SPEC)
    model = build_model("statnn", SPEC).eval()
    h = random_relabel(g, torch.Generator().manual_seed(0))
    torch.testing.assert_close(model(h).graph, model(g).graph)
    one = model.train()(to_graph_batch(params[:1], SPEC)).graph  # a last batch of one trains
    assert one.shape == (1, model.out_dim) and bool(torch.isfinite(one).all())


SMALL_RT = ("model=relational_transformer", "model.kwargs.mode=sparse", "model.kwargs.n_layers=2",
            "model.kwargs.d_node=16", "model.kwargs.d_edge=8", "model.kwargs.d_attn=16",
            "model.kwargs.probe_points=8", "trainer.epochs=10")  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "floor"),
    [
        (("model=statnn", "trainer.epochs=30"), 0.4),
        (SMALL_RT, 0.15),
        (("model=pna", "model.kwargs.n_layers=2", "model.kwargs.hidden=16",
          "model.kwargs.probe_points=8", "trainer.epochs=10", "aug=permute"), 0.15),
    ],
    ids=["statnn", "rt", "pna_permute"],
)  # fmt: skip
def test_accuracy_prediction_learns_above_chance(zoo_path, tmp_path, extra, floor) -> None:
    summary = train(zoo_path, tmp_path, *extra)
    # chance is 0; tau of random predictions of these ~120 test CNNs spreads by ~0.06
    # (measured on this zoo: statnn 0.5, rt 0.27, pna 0.22 after 140 steps)
    assert summary["test_tau"] > floor
    outputs = torch.load(tmp_path / "test_outputs.pt", weights_only=True)
    assert outputs["pred"].shape == outputs["target"].shape


def test_mixup_mixes_regression_targets_as_it_mixes_weights(zoo_path, tmp_path) -> None:
    from nngraph.augment import MixUp

    spec = SPEC
    params = torch.randn(6, spec.num_params)
    y = torch.rand(6, 1)
    aug = MixUp(seed=0)
    out = aug(to_graph_batch(params, spec, y=y))
    lam, partner = aug.last_lam.view(-1, 1), aug.last_partner
    torch.testing.assert_close(out.y, lam * y + (1 - lam) * y[partner])
    summary = train(zoo_path, tmp_path, *SMALL_RT, "trainer.epochs=2", "aug=mixup_align")
    assert -1 <= summary["test_tau"] <= 1


def test_a_zoo_needs_the_regression_task_and_a_column_it_has(zoo_path, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"is a CNN zoo: .* use task=regression"):
        train(zoo_path, tmp_path, "task=classification", "model=statnn")
    with pytest.raises(ValueError, match=r"task.target=accuracy is not a column .* test_accuracy"):
        train(zoo_path, tmp_path, "task.target=accuracy", "model=statnn")


def test_a_resumed_regression_run_ends_like_an_uninterrupted_one(zoo_path, tmp_path) -> None:
    extra = ("model=statnn", "trainer.epochs=4", "aug=mixup")
    whole = train(zoo_path, tmp_path / "whole", *extra)
    train(zoo_path, tmp_path / "cut", *extra, "trainer.max_steps=7")
    resumed = train(zoo_path, tmp_path / "cut", *extra, f"trainer.resume={tmp_path / 'cut'}")
    for key in ("steps", "best_step", "val_tau", "test_tau", "test_rmse"):
        assert resumed[key] == whole[key], key


def test_fewer_training_views_change_neither_the_test_set_nor_the_scaling_rows(
    zoo_path, tmp_path
) -> None:
    store = load_store(zoo_path)
    target = store.columns["test_accuracy"].float()
    train(zoo_path, tmp_path, "model=statnn", "trainer.epochs=1", "data.views=1")
    outputs = torch.load(tmp_path / "test_outputs.pt", weights_only=True)
    assert len(outputs["target"]) == len(store.indices("test"))  # every checkpoint of each run
    state = torch.load(tmp_path / "last.pt", weights_only=True)["model"]
    trained_on = target[store.indices("train", views=1)]
    torch.testing.assert_close(state["mean"], trained_on.mean())
    torch.testing.assert_close(state["std"], trained_on.std())


def test_a_resume_that_would_predict_another_target_is_refused(zoo_path, tmp_path) -> None:
    train(zoo_path, tmp_path / "a", "model=statnn", "trainer.epochs=2", "trainer.max_steps=3")
    with pytest.raises(ValueError, match=r"target: test_accuracy -> lr"):
        train(zoo_path, tmp_path / "b", "model=statnn", "trainer.epochs=2", "task.target=lr",
              f"trainer.resume={tmp_path / 'a'}")  # fmt: skip


@pytest.mark.parametrize(
    ("override", "message"),
    [("task.head_hidden=[0]", r"task.head_hidden=\[0\] is not allowed"),
     ("task.head_hidden=[-3]", r"task.head_hidden=\[-3\] is not allowed"),
     ("model.kwargs.out_dim=0", r"model.kwargs.out_dim=0 is not allowed"),
     ("model.kwargs.hidden=[32]", r"model.kwargs.hidden=\[32\] is not allowed")],
)  # fmt: skip
def test_zero_or_malformed_widths_are_refused(zoo_path, tmp_path, override, message) -> None:
    model = "model=mlp" if "model.kwargs" in override else "model=statnn"
    with pytest.raises(ValueError, match=message):
        train(zoo_path, tmp_path, model, "trainer.epochs=1", override)


def test_statnn_baseline_refuses_what_it_cannot_fit(zoo_path) -> None:
    store = load_store(zoo_path)
    params, y = store.params[:20].float(), store.columns["test_accuracy"][:20].float()
    bad = params.clone()
    bad[3, 0] = float("nan")
    with pytest.raises(ValueError, match=r"sample 3: .* holds non-finite values"):
        statnn_baseline(bad, y, params, store.spec)
    with pytest.raises(ValueError, match=r"params must have shape"):
        statnn_baseline(params[:, :-1], y, params, store.spec)
    with pytest.raises(ValueError, match=r"train_params needs at least 2"):
        statnn_baseline(params[:1], y[:1], params, store.spec)
    with pytest.raises(ValueError, match=r"train_y must hold 20 finite targets"):
        statnn_baseline(params, y[:19], params, store.spec)
    assert torch.isfinite(statnn_baseline(params, y, params[:1], store.spec)).all()


def test_a_new_run_in_a_used_directory_starts_a_fresh_metrics_log(zoo_path, tmp_path) -> None:
    from nngraph.train.logging import read_metrics

    for _ in range(2):
        train(zoo_path, tmp_path, "model=statnn", "trainer.epochs=2")
    steps = [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")]
    assert steps == sorted(set(steps))  # one run's lines, no repeats from the first
