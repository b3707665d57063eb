"""Nothing silent: every bad store, label, setting, file-system fault and concurrent use gets one
clear error before any work (or the exact result), and leaves no partial file."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

import nngraph
from nngraph.builders import check_settings
from nngraph.data import (
    build_store,
    export_wsa,
    import_wsa,
    load_source,
    load_store,
    save_store,
)
from nngraph.data.loader import GraphBatches
from nngraph.data.normalize import cached_layer_stats, layer_stats
from nngraph.graph import ArchSpec
from nngraph.io import OutputLock, atomic_torch_save, describe_error, load_torch_file
from nngraph.models import build_model
from nngraph.tasks import ClassificationTask
from nngraph.train import TrainData, Trainer, TrainerSettings
from nngraph.train.logging import MetricsLogger, read_metrics
from nngraph.viz.training import write_run_figures

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store_path(digits8_path) -> Path:
    return digits8_path  # tests/conftest.py: all digits as 2-8-8-1 SIRENs


@pytest.fixture
def store(store_path):
    return load_store(store_path, mmap=False)


def _strict_json(text: str):
    def refuse(name: str):
        raise ValueError(f"bare {name} in JSON")

    return json.loads(text, parse_constant=refuse)


def _cfg(*overrides: str, name: str = "config"):
    with initialize_config_dir(config_dir=str(nngraph.config_dir()), version_base=None):
        return compose(name, overrides=list(overrides))


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args, "trainer.progress=false"],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _one_line_error(run: subprocess.CompletedProcess, *needles: str) -> None:
    assert run.returncode == 1, (run.returncode, run.stderr[-500:])
    assert "Traceback" not in run.stderr, run.stderr[-800:]
    last = run.stderr.strip().splitlines()[-1]
    for needle in needles:
        assert needle in last, last


# ---- stores ---------------------------------------------------------------------------------
def test_a_store_with_nan_or_inf_is_refused_at_save(store, tmp_path: Path) -> None:
    for bad in (float("nan"), float("inf")):
        params = store.params.clone()
        params[7, 3] = bad
        with pytest.raises(ValueError, match=r"NaN or Inf parameters \(rows 7\)"):
            save_store(dataclasses.replace(store, params=params), tmp_path / "bad.pt")
    assert list(tmp_path.iterdir()) == []


def test_a_finished_store_opens_while_another_process_holds_its_lock(tmp_path: Path) -> None:
    """Runs that share a cached store start at once: only fitting takes the store's lock."""
    source, spec, out = (
        load_source("digits").subset(3),
        ArchSpec.siren(hidden_dim=8),
        tmp_path / "s.pt",
    )
    first = build_store(source, spec, out, steps=5, progress=False)
    with OutputLock(tmp_path / ".s.pt.lock", "x"):
        again = build_store(source, spec, out, steps=5, progress=False)
        assert torch.equal(again.params, first.params)
        with pytest.raises(ValueError, match="made with other settings"):
            build_store(source, spec, out, steps=6, progress=False)


def test_nan_written_after_the_check_stops_training_before_it_starts(store_path, tmp_path):
    payload = torch.load(store_path, weights_only=True)
    payload["params"] = payload["params"].clone()
    payload["params"][5, 0] = float("nan")  # the header still says "checked: finite"
    torch.save(payload, tmp_path / "flipped.pt")
    run = _cli(
        f"data.path={tmp_path / 'flipped.pt'}", "model=mlp", "hydra.run.dir=run", cwd=tmp_path
    )
    _one_line_error(run, "NaN or Inf parameters", "rows 5")
    assert not (tmp_path / "run" / "summary.json").exists()
    del payload["checked"]  # a store without the check record is checked in full when opened
    torch.save(payload, tmp_path / "unchecked.pt")
    with pytest.raises(ValueError, match=r"NaN or Inf parameters \(rows 5\)"):
        load_store(tmp_path / "unchecked.pt")


@pytest.mark.parametrize("label", [-1, 10])
def test_labels_outside_the_classes_are_refused(store, tmp_path: Path, label: int) -> None:
    labels = store.labels.clone()
    labels[-1] = label  # the last row is in the test split: it must fail before training
    with pytest.raises(ValueError, match=r"labels.*rows 1796"):
        save_store(dataclasses.replace(store, labels=labels), tmp_path / "bad.pt")
    assert list(tmp_path.iterdir()) == []


def test_views_of_one_item_in_two_splits_are_refused(store, tmp_path: Path) -> None:
    source = store.source_index.clone()
    train, test = store.indices("train")[0], store.indices("test")[0]
    source[test] = source[train]  # one image in train and test
    with pytest.raises(ValueError, match="in two splits"):
        save_store(dataclasses.replace(store, source_index=source), tmp_path / "bad.pt")


def test_caches_follow_a_change_anywhere_in_the_store(store, tmp_path: Path) -> None:
    path = tmp_path / "s.pt"
    save_store(store, path)
    rows = store.indices("train")
    before = cached_layer_stats(load_store(path), path, rows, 1)
    params = store.params.clone()
    params[len(params) // 2] *= 3.0  # a row in the middle: the old key hashed only the ends
    save_store(dataclasses.replace(store, params=params), path)
    after = cached_layer_stats(load_store(path), path, rows, 1)
    expected = layer_stats(params[rows], store.spec)
    assert not torch.equal(before.weight_std, after.weight_std)
    assert torch.equal(after.weight_std, expected.weight_std)


# ---- training -------------------------------------------------------------------------------
def _trainer(store, run_dir: Path, task=None, **settings) -> Trainer:
    torch.manual_seed(0)
    rows = store.indices("train")
    evals = {s: GraphBatches(store, store.indices(s), 256) for s in ("train", "val", "test")}
    data = TrainData(store.spec, rows, GraphBatches(store, rows, settings.pop("batch", 64)), evals)
    encoder = build_model("mlp", store.spec, hidden=32, out_dim=16)
    encoder.set_input_stats(layer_stats(store.params[rows], store.spec))
    task = task or ClassificationTask(encoder, 10, (16,))
    opt = torch.optim.AdamW(task.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 7))
    settings = {"epochs": 3, "progress": False, **settings}
    return Trainer(task, data, opt, sched, run_dir, TrainerSettings(**settings))


class _NanAfter(ClassificationTask):
    def forward(self, batch):
        loss, logs = super().forward(batch)
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls >= 7:
            loss = loss * float("nan")
        return loss, {**logs, "loss": loss.item()}


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(store, tmp_path):
    encoder = build_model("mlp", store.spec, hidden=32, out_dim=16)
    trainer = _trainer(store, tmp_path, task=_NanAfter(encoder, 10, (16,)), eval_every=5)
    with pytest.raises(ValueError, match=r"loss is nan at step 7.*last good checkpoint"):
        trainer.fit()
    assert torch.load(tmp_path / "last.pt", weights_only=True)["state"]["step"] == 5


def test_metrics_and_summaries_never_hold_bare_nan(tmp_path: Path) -> None:
    logger = MetricsLogger(tmp_path, {})
    logger.log({"step": 1, "val_loss": float("nan"), "val_acc": float("inf"), "ok": 0.5})
    (line,) = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert _strict_json(line) == {"step": 1, "val_loss": None, "val_acc": None, "ok": 0.5}


def test_resume_at_every_evaluation_including_after_the_last_is_exact(store, tmp_path):
    whole = _trainer(store, tmp_path / "whole", max_steps=30, eval_every=5)
    whole.fit()
    expected = read_metrics(tmp_path / "whole" / "metrics.jsonl")
    assert [r["step"] for r in expected] == [5, 10, 15, 20, 25, 30]  # the last step once
    for kill in (5, 10, 15, 20, 25, 30):  # killed right after the evaluation of step `kill`
        first = _trainer(store, tmp_path / f"a{kill}", max_steps=kill, eval_every=5)
        first.fit()
        first.close()
        second = _trainer(store, tmp_path / f"b{kill}", max_steps=30, eval_every=5)
        second.resume(tmp_path / f"a{kill}")
        second.fit()
        assert second.state.step == 30
        got = read_metrics(tmp_path / f"b{kill}" / "metrics.jsonl")
        strip = [{k: v for k, v in r.items() if k != "time"} for r in got]
        assert strip == [{k: v for k, v in r.items() if k != "time"} for r in expected], kill
        for a, b in zip(whole.task.state_dict().values(), second.task.state_dict().values()):
            assert torch.equal(a, b), kill
        second.close()


def test_resume_refuses_another_batch_size_unless_allowed(store, tmp_path: Path) -> None:
    first = _trainer(store, tmp_path / "a", max_steps=5)
    first.fit()
    other = _trainer(store, tmp_path / "b", batch=32)
    with pytest.raises(ValueError, match=r"batch_size: 64 -> 32.*resume_changes=true"):
        other.resume(tmp_path / "a")
    allowed = _trainer(store, tmp_path / "c", batch=32, resume_changes=True)
    allowed.resume(tmp_path / "a")
    assert allowed.state.step == 5


def test_two_runs_in_one_directory_are_refused(store, tmp_path: Path) -> None:
    first = _trainer(store, tmp_path)
    with pytest.raises(ValueError, match="another nngraph process is using the run directory"):
        _trainer(store, tmp_path)
    first.close()
    _trainer(store, tmp_path).close()  # free again once the first is done


def test_leftover_temp_files_of_a_killed_write_are_removed(store, tmp_path: Path) -> None:
    (tmp_path / ".last.pt.x1y2.tmp").write_bytes(b"half a checkpoint")
    _trainer(store, tmp_path).close()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_two_fits_into_one_output_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "s.pt"
    with OutputLock(tmp_path / ".s.pt.lock", "x"):
        with pytest.raises(ValueError, match=f"another nngraph process is using the store {out}"):
            build_store(load_source("digits").subset(3), ArchSpec.siren(hidden_dim=8), out,
                        steps=5, progress=False)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


# ---- settings -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "override",
    [
        "trainer.clip_grad=-1", "trainer.max_steps=-1", "trainer.eval_every=-1",
        "trainer.epochs=0", "trainer.batch_size=0", "trainer.lr=-1", "trainer.max_minutes=0",
        "trainer.weight_decay=-0.1", "trainer.warmup_steps=-3", "task.label_smoothing=2",
        "data.views=0", "data.val_fraction=1.5", "trainer.device=foo", "fit.lr=-1",
        "fit.subset=-5", "fit.target_psnr=-5", "fit.steps=-1", "fit.chunk_size=0",
        "trainer.compile=maybe", "trainer.amp=2", "trainer.progress=yes please",
    ],
)  # fmt: skip
def test_nonsense_settings_are_named_before_any_work(override: str) -> None:
    key = override.split("=")[0]
    with pytest.raises(ValueError, match=rf"^{key}="):
        check_settings(_cfg(override))


def test_shape_fit_settings_are_checked_too() -> None:
    for override in ("data.points_per_step=0", "data.points=4", "fit.target_sign=1.5"):
        with pytest.raises(ValueError, match=rf"^{override.split('=')[0]}="):
            check_settings(_cfg("data=shapes", override, name="fit"))


def test_simclr_settings_are_checked_too() -> None:
    for override in ("task.temperature=0", "task.mixup_min_lam=1.5"):
        with pytest.raises(ValueError, match=override.split("=")[0]):
            check_settings(_cfg("task=simclr", override))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_missing_gpu_is_named_before_fitting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fit.device=cuda but no CUDA"):
        check_settings(_cfg("fit.device=cuda", name="fit"))
    with pytest.raises(ValueError, match="fit.device=cuda but no CUDA"):
        build_store(load_source("digits").subset(3), ArchSpec.siren(hidden_dim=8),
                    tmp_path / "s.pt", device="cuda", progress=False)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_a_bad_setting_on_the_command_line_is_one_line_and_writes_nothing(tmp_path: Path):
    run = _cli("data.val_fraction=1.5", "hydra.run.dir=run", cwd=tmp_path)
    _one_line_error(run, "data.val_fraction=1.5", "[0, 1)")
    assert list(tmp_path.iterdir()) == []  # no store, no .parts, no run directory
    fit = subprocess.run(
        [sys.executable, "-m", "nngraph.fit", "fit.lr=-1", f"fit.out={tmp_path / 's.pt'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    _one_line_error(fit, "fit.lr=-1")
    assert list(tmp_path.iterdir()) == []


# ---- files ----------------------------------------------------------------------------------
def test_a_full_disk_is_an_os_error_naming_the_file_and_leaves_no_temp(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError) as caught:
        atomic_torch_save({"a": 1}, tmp_path / "x.pt")
    assert describe_error(caught.value) == f"cannot write {tmp_path / 'x.pt'}: the disk is full"
    assert list(tmp_path.iterdir()) == []


def test_os_errors_read_as_one_line_naming_the_path() -> None:
    err = OSError(errno.EROFS, "Read-only file system", "/data/inrs/s.pt")
    assert describe_error(err) == "cannot write /data/inrs/s.pt: read-only file system"
    err = PermissionError(errno.EACCES, "Permission denied", "/runs/x")
    assert describe_error(err) == "cannot write /runs/x: no permission to write there"


def test_pickles_are_refused_as_not_nngraph_files(tmp_path: Path) -> None:
    torch.save({"x": argparse.Namespace(a=1)}, tmp_path / "obj.pt")  # an object, not tensors
    with pytest.raises(ValueError, match="not an nngraph file.*never unpickles") as caught:
        load_torch_file(tmp_path / "obj.pt")
    assert "weights_only=False" not in str(caught.value)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="corrupt, truncated or not a torch file"):
        load_torch_file(tmp_path / "junk.pt")


def test_viz_checks_the_outputs_before_writing_any_figure(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "train_loss": 1.0}) + "\n")
    torch.save({"pred": [1, 2]}, tmp_path / "test_outputs.pt")
    with pytest.raises(ValueError, match="not a run's test outputs"):
        write_run_figures(tmp_path)
    assert not list(tmp_path.glob("*.png"))


# ---- importers ------------------------------------------------------------------------------
@pytest.fixture
def wsa(store, tmp_path: Path) -> Path:
    small = dataclasses.replace(
        store, params=store.params[:6], labels=store.labels[:6], view=store.view[:6],
        source_index=torch.arange(6), split=torch.tensor([0, 0, 0, 1, 2, 2]), psnr=store.psnr[:6],
    )  # fmt: skip
    return export_wsa(small, tmp_path / "wsa")


def _file(splits: Path, entry: str) -> Path:
    """Where the splits file's ``entry`` lies (entries start with the dataset folder's name)."""
    return splits.parent.parent / entry


def _rewrite(splits: Path, edit) -> None:
    table = json.loads(splits.read_text())
    edit(table)
    splits.write_text(json.dumps(table))


def test_importers_refuse_a_file_listed_twice(wsa: Path) -> None:
    _rewrite(wsa, lambda t: t["test"].append(t["train"][0]))
    with pytest.raises(ValueError, match="twice"):
        import_wsa(wsa, progress=False)


def test_importers_refuse_views_of_one_image_in_two_splits(wsa: Path) -> None:
    table = json.loads(wsa.read_text())
    first = table["train"][0]
    assert "view_0" in first
    other = first.replace("view_0", "view_1")  # another view of the same image ...
    _file(wsa, other).write_bytes(_file(wsa, first).read_bytes())
    _rewrite(wsa, lambda t: t["test"].append(other))  # ... listed under test
    with pytest.raises(ValueError, match="views of one image in train .* and test"):
        import_wsa(wsa, progress=False)


def test_importers_refuse_views_of_one_image_with_two_labels(wsa: Path) -> None:
    table = json.loads(wsa.read_text())
    first = table["train"][0]
    other = first.replace("view_0", "view_1")
    sd = torch.load(_file(wsa, first), weights_only=True)
    torch.save({**sd, "label": sd["label"] + 1}, _file(wsa, other))
    _rewrite(wsa, lambda t: t["train"].append(other))
    with pytest.raises(ValueError, match="views of one image have labels"):
        import_wsa(wsa, progress=False)


@pytest.mark.parametrize("label", [2.5, -1.0, [1.0, 2.0]])
def test_importers_refuse_bad_labels_naming_the_file(wsa: Path, label) -> None:
    path = _file(wsa, json.loads(wsa.read_text())["train"][0])
    sd = torch.load(path, weights_only=True)
    torch.save({**sd, "label": torch.tensor(label)}, path)
    with pytest.raises(ValueError, match=rf"{path.name}: the label must be"):
        import_wsa(wsa, progress=False)
