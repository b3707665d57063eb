"""The CNN zoo: the batched forward and gradients equal one module per network, a tiny zoo
trains (accuracy spreads, stored targets match the decoded networks), resumes, and refuses
nonsense settings before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nngraph.data.store import load_store
from nngraph.graph import ArchSpec, from_params, to_module
from nngraph.zoo.build import build_zoo
from nngraph.zoo.functional import cnn_forward, cnn_init
from nngraph.zoo.train import HYPERPARAMETERS, sample_hyperparameters, train_zoo
from tests.helpers import tiny_source

SPEC = ArchSpec.cnn((1, 4, 6), (5, 3), 3, stride=[1, 2])


def test_batched_forward_and_gradients_equal_one_module_per_network() -> None:
    torch.manual_seed(0)
    params = cnn_init(SPEC, torch.tensor([0.5, 1.0, 2.0])).requires_grad_()
    images = torch.randn(3, 7, 1, 8, 8)
    labels = torch.randint(0, 3, (3, 7))
    logits = cnn_forward(params, images, SPEC)
    loss = F.cross_entropy(logits.reshape(-1, 3), labels.reshape(-1), reduction="sum")
    (grad,) = torch.autograd.grad(loss, params)
    for i in range(3):
        net = to_module(from_params(params[i].detach(), SPEC))
        torch.testing.assert_close(logits[i], net(images[i]), rtol=1e-5, atol=1e-6)
        F.cross_entropy(net(images[i]), labels[i], reduction="sum").backward()
        mine = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
        torch.testing.assert_close(grad[i], mine, rtol=1e-4, atol=1e-6)


def test_hyperparameters_are_drawn_within_their_ranges() -> None:
    h = sample_hyperparameters(500, seed=3)
    for name, (kind, lo, hi) in HYPERPARAMETERS.items():
        assert float(h[name].min()) >= lo and float(h[name].max()) <= hi, name
        assert h[name].dtype == (torch.long if kind == "int" else torch.float32)
    assert set(h["epochs"].tolist()) == set(range(HYPERPARAMETERS["epochs"][1],
                                                  HYPERPARAMETERS["epochs"][2] + 1))  # fmt: skip


def test_each_run_trains_as_if_the_others_had_other_lengths() -> None:
    # runs are trained longest first and a step computes only the runs still going: shortening
    # one run must leave every other run's checkpoints as they were, and stop that run early
    source = tiny_source(96)
    images, labels = source.images.permute(0, 3, 1, 2), source.labels
    hyper = sample_hyperparameters(5, seed=2)
    hyper["epochs"] = torch.tensor([2, 4, 4, 1, 3])
    shorter = {**hyper, "epochs": torch.tensor([2, 4, 2, 1, 3])}
    marks = (0.5, 1.0)
    a = train_zoo(images, labels, SPEC, hyper, batch_size=16, checkpoints=marks, progress=False)
    b = train_zoo(images, labels, SPEC, shorter, batch_size=16, checkpoints=marks, progress=False)
    same = [0, 1, 3, 4]
    torch.testing.assert_close(a.params[same], b.params[same], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(a.params[2, 1], b.params[2, 1])
    per_epoch = -(-len(images) // 16)
    for result, epochs in ((a, hyper["epochs"]), (b, shorter["epochs"])):
        want = (epochs.view(-1, 1) * per_epoch * torch.tensor(marks)).round() / per_epoch
        torch.testing.assert_close(result.epoch, want)
    # run 2's shortened end is where its longer version stood after the same number of steps
    torch.testing.assert_close(b.params[2, 1], a.params[2, 0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("epochs", "marks"), [([2, 0], (1.0,)), ([2, 1], (0.5, 1.5))])
def test_train_zoo_refuses_runs_without_steps_or_checkpoints_past_the_end(epochs, marks) -> None:
    source = tiny_source(48)
    hyper = {**sample_hyperparameters(2), "epochs": torch.tensor(epochs)}
    with pytest.raises(ValueError, match=r"need checkpoints in \(0, 1\] and epochs >= 1"):
        train_zoo(source.images.permute(0, 3, 1, 2), source.labels, SPEC, hyper,
                  checkpoints=marks, progress=False)  # fmt: skip


def _ranges(**over: tuple) -> dict:
    ranges = {**HYPERPARAMETERS, "epochs": ("int", 2, 6), **over}
    return ranges


def test_a_tiny_zoo_trains_spreads_and_stores_true_targets(tmp_path: Path) -> None:
    source = tiny_source()
    store = build_zoo(source, SPEC, tmp_path / "zoo.pt", runs=12, chunk_runs=5,
                      hyperparameters=_ranges(), batch_size=16, progress=False)  # fmt: skip
    assert len(store) + store.meta["diverged"] == 12 * 5
    acc = store.columns["test_accuracy"]
    assert float(acc.max()) > 0.6 and float(acc.max() - acc.min()) > 0.3
    # each run's checkpoints share its split, and every split has runs
    for run in store.source_index.unique():
        assert len(store.split[store.source_index == run].unique()) == 1
    assert set(store.split.tolist()) == {0, 1, 2}
    test_x = source.images[source.is_test].permute(0, 3, 1, 2)
    test_y = source.labels[source.is_test]
    for row in (0, len(store) // 2, len(store) - 1):
        net = to_module(from_params(store.params[row], SPEC))
        truth = (net(test_x).argmax(1) == test_y).float().mean()
        torch.testing.assert_close(store.columns["test_accuracy"][row], truth)
    reopened = load_store(tmp_path / "zoo.pt")
    assert torch.equal(reopened.params, store.params)
    assert reopened.columns.keys() == store.columns.keys()


def test_an_interrupted_zoo_resumes_to_the_same_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nngraph.zoo.build as zoo_build

    source = tiny_source()
    kw = dict(runs=6, chunk_runs=3, hyperparameters=_ranges(), batch_size=16, progress=False,
              val_fraction=0.3)  # fmt: skip
    whole = build_zoo(source, SPEC, tmp_path / "a.pt", **kw)
    real, calls = zoo_build.train_zoo, []

    def dies_on_the_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(zoo_build, "train_zoo", dies_on_the_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        build_zoo(source, SPEC, tmp_path / "b.pt", **kw)
    assert not (tmp_path / "b.pt").exists()
    assert [p.name for p in sorted((tmp_path / "b.pt.parts").glob("chunk_*"))] == [
        "chunk_000000.pt"
    ]
    calls.clear()
    resumed = build_zoo(source, SPEC, tmp_path / "b.pt", **kw)
    assert len(calls) == 1  # only the missing chunk was trained
    assert torch.equal(resumed.params, whole.params)
    assert all(torch.equal(resumed.columns[k], v) for k, v in whole.columns.items())
    assert not (tmp_path / "b.pt.parts").exists()
    with pytest.raises(ValueError, match=r"made with other settings \(.*runs: 6 -> 7"):
        build_zoo(source, SPEC, tmp_path / "a.pt", **{**kw, "runs": 7})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"runs": 0}, r"need runs, batch_size and chunk_runs >= 1"),
        ({"checkpoints": (0.0, 1.0)}, r"checkpoints are fractions of a run in \(0, 1\]"),
        ({"hyperparameters": _ranges(lr=("log", 0.0, 1e-2))}, r"hyperparameter lr: .* not a"),
        ({"hyperparameters": _ranges(label_noise=("uniform", 0.0, 1.5))}, r"lo >= 0 and <= 1"),
        ({"hyperparameters": {"lr": ("log", 1e-3, 1e-2)}}, r"missing \['data_fraction'"),
        ({"test_fraction": 1.0}, r"need 0 < test_fraction < 1"),
    ],
)
def test_nonsense_zoo_settings_fail_before_any_write(tmp_path: Path, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_zoo(tiny_source(), SPEC, tmp_path / "z.pt", progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_the_zoo_refuses_specs_that_do_not_fit_the_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"takes 3 channels .* tiny has 1 channels"):
        build_zoo(tiny_source(), ArchSpec.cnn((3, 4), (3,)), tmp_path / "z.pt")
    with pytest.raises(ValueError, match=r"a zoo trains CNNs"):
        build_zoo(tiny_source(), ArchSpec.mlp((2, 4, 3)), tmp_path / "z.pt")
