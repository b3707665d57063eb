"""The zoo refuses every setting that would train nonsense or end in a broken store, with one line
before any write; damaged resumption files are named before any training; what the zoo
benchmarks and train.py read from a zoo is checked the same way."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

import nngraph
import nngraph.zoo.build as zoo_build
from benchmarks._inputs import open_zoo, positive_int
from nngraph.builders import build_zoo_store, open_store
from nngraph.data.parts import settings_diff
from nngraph.data.store import INRStore, load_store, save_store
from nngraph.graph import ArchSpec
from nngraph.tasks.regression import store_target
from nngraph.train.run import run
from nngraph.zoo.build import build_zoo
from nngraph.zoo.checks import run_splits
from nngraph.zoo.train import HYPERPARAMETERS
from tests.helpers import tiny_source

SPEC = ArchSpec.cnn((1, 4, 6), (3,), 3, stride=[1, 2])
TINY = {"runs": 6, "chunk_runs": 3, "batch_size": 16, "val_fraction": 0.3, "progress": False}


def _ranges(**over: tuple) -> dict:
    return {**HYPERPARAMETERS, "epochs": ("int", 1, 2), **over}


def _zoo_cfg(tmp_path: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(nngraph.config_dir()), version_base=None):
        return compose("zoo", overrides=[f"data_dir={tmp_path}", "zoo.progress=false",
                                         f"zoo.out={tmp_path / 'z.pt'}", *overrides])  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hyperparameters": _ranges(lr=("uniform", -1.0, -0.5))}, r"lr: .* lo > 0"),
        ({"hyperparameters": _ranges(weight_decay=("uniform", -5.0, -4.0))}, r"lo >= 0"),
        ({"hyperparameters": _ranges(init_scale=("uniform", 0.0, 0.0))}, r"init_scale: .* lo > 0"),
        ({"hyperparameters": _ranges(data_fraction=("uniform", 0.0, 0.0))}, r"data_fraction"),
        ({"hyperparameters": _ranges(lr=("log", 1e-3, math.inf))}, r"lr: .* not a range"),
        ({"hyperparameters": _ranges(epochs=("uniform", 1, 2))}, r"runs last whole epochs"),
        ({"hyperparameters": _ranges(epochs=("int", 1.5, 2.5))}, r"runs last whole epochs"),
        ({"hyperparameters": _ranges(lr=("uniform", 0.02, 0.01))}, r"needs lo <= hi"),
        ({"checkpoints": (0.5, 0.5)}, r"checkpoints must increase"),
        ({"checkpoints": (1.0, 0.5)}, r"checkpoints must increase"),
        ({"runs": 10**12}, r"more than this machine's"),
        ({"runs": 4, "test_fraction": 0.01, "val_fraction": 0.0}, r"leave no test run"),
        ({"runs": 4, "val_fraction": 0.1}, r"leave no val run"),
    ],
)
def test_settings_that_would_train_nonsense_are_refused_before_any_write(
    tmp_path: Path, kwargs: dict, message: str
) -> None:
    settings = {**TINY, "hyperparameters": _ranges(), **kwargs}
    with pytest.raises(ValueError, match=message):
        build_zoo(tiny_source(), SPEC, tmp_path / "z.pt", **settings)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("kernel", "strides"), [(17, [1, 1]), (5, [4, 1])])
def test_a_kernel_that_only_ever_sees_padding_is_refused(
    tmp_path: Path, kernel: int, strides: list
) -> None:
    spec = ArchSpec.cnn((1, 4, 6), (3,), kernel, stride=strides)
    with pytest.raises(ValueError, match=rf"{kernel}x{kernel} kernel on a \d+x\d+ input"):
        build_zoo(tiny_source(), spec, tmp_path / "z.pt", **TINY)
    assert list(tmp_path.iterdir()) == []


def test_the_splits_checked_up_front_are_the_splits_stored(tmp_path: Path) -> None:
    store = build_zoo(tiny_source(), SPEC, tmp_path / "z.pt", hyperparameters=_ranges(), **TINY)
    runs = run_splits(TINY["runs"], 0.2, TINY["val_fraction"], 0)
    assert torch.equal(store.split, runs[store.source_index])
    assert {0, 1, 2} <= set(store.split.tolist())


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("zoo.runs=1.5", r"zoo.runs=1.5 is not allowed: it must be an integer"),
        ("zoo.kernel_size=2.5", r"zoo.kernel_size=2.5 is not allowed"),
        ("zoo.channels=[8.7,16]", r"zoo.channels=\[8.7, 16\] is not allowed"),
        ("zoo.channels=8", r"zoo.channels=8 is not allowed: it must be a list"),
        ("zoo.strides=null", r"zoo.strides=None is not allowed"),
        ("zoo.checkpoints=0.5", r"zoo.checkpoints=0.5 is not allowed"),
        ("zoo.head=abc", r"zoo.head=abc is not allowed"),
        ("zoo.hyperparameters=null", r"zoo.hyperparameters=None is not allowed"),
        ("zoo.hyperparameters.lr=0.01", r"zoo.hyperparameters.lr=0.01 is not allowed"),
        ("zoo.hyperparameters.lr=[log,a,b]", r"zoo.hyperparameters.lr=\['log', 'a', 'b'\]"),
        ("zoo.hyperparameters.lr=[log,0.001]", r"must be \[kind, lo, hi\]"),
        ("zoo.overwrite=maybe", r"zoo.overwrite=maybe is not allowed: it must be true or false"),
        ("zoo.seed=abc", r"zoo.seed=abc is not allowed"),
        ("zoo.test_fraction=abc", r"zoo.test_fraction=abc is not allowed"),
        ("data=shapes", r"data=shapes is not an image source"),
    ],
)
def test_nonsense_zoo_config_is_named_before_any_write(
    tmp_path: Path, override: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_zoo_store(_zoo_cfg(tmp_path, "zoo.runs=4", override))
    assert list(tmp_path.iterdir()) == []


def _interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A zoo whose two chunks are trained but not yet assembled into the store."""
    with monkeypatch.context() as patch:
        patch.setattr(zoo_build, "_assemble", _raise_interrupt)
        with pytest.raises(KeyboardInterrupt):
            build_zoo(tiny_source(), SPEC, tmp_path / "z.pt", hyperparameters=_ranges(), **TINY)
    return tmp_path / "z.pt.parts"


def _raise_interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: torch.save({"params": torch.zeros(3)}, p), r"does not hold 15 checkpoints"),
        (lambda p: p.write_bytes(p.read_bytes()[:300]), r"is corrupt, truncated"),
    ],
)
def test_a_damaged_chunk_is_named_before_training_the_missing_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage, message: str
) -> None:
    parts = _interrupted(tmp_path, monkeypatch)
    damage(parts / "chunk_000000.pt")
    (parts / "chunk_000001.pt").unlink()
    calls = []
    monkeypatch.setattr(zoo_build, "train_zoo", lambda *a, **k: calls.append(1))
    with pytest.raises(ValueError, match=message + r".*delete it and re-run the same command"):
        build_zoo(tiny_source(), SPEC, tmp_path / "z.pt", hyperparameters=_ranges(), **TINY)
    assert calls == []  # nothing trained before the error
    assert not (tmp_path / "z.pt").exists()


def test_a_damaged_manifest_names_itself_and_the_folder_to_delete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = _interrupted(tmp_path, monkeypatch)
    (parts / "manifest.json").write_text("garbage")
    with pytest.raises(ValueError, match=r"manifest.json is damaged .*delete .*z.pt.parts"):
        build_zoo(tiny_source(), SPEC, tmp_path / "z.pt", hyperparameters=_ranges(), **TINY)


def test_a_zoo_where_every_network_diverged_is_an_error_not_an_empty_store(
    tmp_path: Path,
) -> None:
    ranges = _ranges(lr=("log", 1e6, 1e7), init_scale=("log", 100.0, 200.0))
    with pytest.raises(ValueError, match=r"all 12 CNN checkpoints diverged .*lower"):
        build_zoo(tiny_source(), SPEC, tmp_path / "z.pt", hyperparameters=ranges,
                  **{**TINY, "checkpoints": (0.5, 1.0)})  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # no store, and no parts left to block new settings


def test_a_changed_nested_setting_is_named_by_its_subkey() -> None:
    old = {"runs": 4, "hyperparameters": {"lr": ["log", 1, 2], "epochs": ["int", 1, 1]}}
    new = {"runs": 4, "hyperparameters": {"lr": ["log", 1, 2], "epochs": ["int", 3, 15]}}
    assert settings_diff(old, new) == "hyperparameters.epochs: ['int', 1, 1] -> ['int', 3, 15]"


def _zoo_with(tmp_path: Path, name: str, **column: float) -> Path:
    store = build_zoo(tiny_source(), SPEC, tmp_path / "z.pt", hyperparameters=_ranges(), **TINY)
    columns = dict(store.columns)
    for key, value in column.items():
        columns[key] = columns[key].clone()
        columns[key][0] = value
    changed = INRStore(params=store.params, labels=store.labels, view=store.view,
                       source_index=store.source_index, split=store.split, spec=store.spec,
                       columns=columns, meta=store.meta)  # fmt: skip
    return save_store(changed, tmp_path / name)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_non_finite_target_is_named_as_such(tmp_path: Path, value: float) -> None:
    store = load_store(_zoo_with(tmp_path, "bad.pt", test_accuracy=value))
    with pytest.raises(ValueError, match=r"test_accuracy has NaN or Inf values \(rows 0;"):
        store_target(store, "test_accuracy")


def test_data_zoo_refuses_a_store_that_is_not_a_zoo(digits8_path: Path) -> None:
    with initialize_config_dir(config_dir=str(nngraph.config_dir()), version_base=None):
        cfg = compose("config", overrides=["data=zoo", f"data.path={digits8_path}"])
    with pytest.raises(ValueError, match=r"is not a CNN zoo"):
        open_store(cfg)


@pytest.mark.parametrize(("text", "message"), [("0", "at least 1"), ("-2", "at least 1"),
                                               ("x", "not an integer")])  # fmt: skip
def test_benchmark_counts_must_be_positive(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        positive_int(text)
    assert positive_int("3") == 3


def test_benchmarks_open_only_a_zoo(tmp_path: Path, digits8_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no zoo at"):
        open_zoo(tmp_path / "missing.pt")
    with pytest.raises(SystemExit, match=r"is a directory"):
        open_zoo(tmp_path)
    with pytest.raises(SystemExit, match=r"is not a CNN zoo"):
        open_zoo(digits8_path)
    (tmp_path / "cut.pt").write_bytes(digits8_path.read_bytes()[:200])
    with pytest.raises(
        SystemExit, match=r"corrupt, truncated.*python -m nngraph.zoo. for a CNN zoo"
    ):
        open_zoo(tmp_path / "cut.pt")


def test_train_py_finds_a_zoo_source_where_the_zoo_command_does(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with initialize_config_dir(config_dir=str(nngraph.config_dir()), version_base=None):
        cfg = compose("config", overrides=["data=zoo", "data.source=mnist", f"data_dir={tmp_path}"])
    with pytest.raises(ValueError, match=rf"no IDX files under {tmp_path / 'mnist'}"):
        open_store(cfg)
    assert "training" not in capsys.readouterr().out  # nothing announced before the error


def test_a_zoo_without_a_validation_split_is_named_when_training(tmp_path: Path) -> None:
    path = tmp_path / "noval.pt"
    build_zoo(tiny_source(), SPEC, path, hyperparameters=_ranges(), **{**TINY, "val_fraction": 0})
    with initialize_config_dir(config_dir=str(nngraph.config_dir()), version_base=None):
        cfg = compose("config", overrides=["data=zoo", f"data.path={path}", "task=regression",
                                           "model=statnn", "trainer.progress=false"])  # fmt: skip
    with pytest.raises(ValueError, match=r"noval.pt has no val CNNs: its splits were fixed"):
        run(cfg, tmp_path / "run")


def test_a_disk_too_small_for_the_zoo_is_named_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import collections

    import nngraph.zoo.checks as checks

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(checks.shutil, "disk_usage", lambda where: usage(10**6, 10**6, 1000))
    with pytest.raises(ValueError, match=r"the zoo needs about .* MiB on .* but 0 MiB are free"):
        build_zoo(tiny_source(), SPEC, tmp_path / "new" / "z.pt", hyperparameters=_ranges(),
                  **TINY)  # fmt: skip
    assert not (tmp_path / "new" / "z.pt.parts").exists()
