"""Fitting a source into a store: resumable after a kill, cached, and the CLI around it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nngraph.data.build as build
from nngraph.data import build_store, load_source, load_store, reconstruct
from nngraph.graph import ArchSpec
from nngraph.inr import psnr

ROOT = Path(__file__).resolve().parents[1]
SPEC = ArchSpec.siren()


@pytest.fixture(scope="module")
def source():
    return load_source("digits").subset(12)  # 12 train + 12 test images


def _build(source, out: Path, **kw):
    options = dict(views=2, steps=500, lr=2e-3, chunk_size=8, progress=False, val_fraction=0.25)
    return build_store(source, SPEC, out, **{**options, **kw})


def test_killed_run_resumes_to_the_same_store(
    source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _build(source, tmp_path / "whole.pt")

    real_fit, calls = build.fit_inrs, []

    def dies_on_third_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the run is killed while fitting chunk 3 of 6
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(build, "fit_inrs", dies_on_third_chunk)
    out = tmp_path / "resumed.pt"
    with pytest.raises(KeyboardInterrupt):
        _build(source, out)
    parts = out.with_name(out.name + ".parts")
    assert not out.exists()  # no half-written store
    assert sorted(p.name for p in parts.glob("chunk_*.pt")) == [
        "chunk_000000.pt",
        "chunk_000001.pt",
    ]

    calls.clear()
    monkeypatch.setattr(build, "fit_inrs", real_fit)
    resumed = _build(source, out)
    assert not parts.exists()
    assert len(resumed) == len(reference) == 48
    for name in ("params", "labels", "view", "source_index", "split", "psnr"):
        assert getattr(resumed, name).shape == getattr(reference, name).shape, name
        assert torch.equal(getattr(resumed, name), getattr(reference, name)), name


def test_store_layout_and_quality(source, tmp_path: Path) -> None:
    store = load_store(_build(source, tmp_path / "s.pt") and tmp_path / "s.pt")
    assert torch.equal(store.view, torch.tensor([0, 1] * 24))
    assert torch.equal(store.source_index, source.index.repeat_interleave(2))
    assert torch.equal(store.labels, source.labels.repeat_interleave(2))
    assert set(store.split[store.view == 0].tolist()) == {0, 1, 2}
    assert torch.equal(store.split[0::2], store.split[1::2])  # both views share their split
    assert bool((store.split[source.is_test.repeat_interleave(2)] == 2).all())
    images = reconstruct(store, torch.arange(len(store)))
    targets = source.images.repeat_interleave(2, dim=0)
    assert bool((psnr(((images - targets) ** 2).mean(dim=(1, 2, 3))) >= 35).all())
    assert store.meta["image_shape"] == [8, 8, 1] and store.meta["source"] == "digits"


def test_existing_stores_are_reused_only_with_the_same_settings(
    source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "s.pt"
    first = _build(source, out)

    def no_fitting(*args, **kwargs):
        raise AssertionError("fitted again")

    monkeypatch.setattr(build, "fit_inrs", no_fitting)
    again = _build(source, out)
    assert torch.equal(again.params, first.params)
    with pytest.raises(ValueError, match=r"other settings \(views: 2 -> 3\).*fit.overwrite=true"):
        _build(source, out, views=3)


def test_unfinished_run_with_other_settings_is_not_mixed_in(
    source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def dies(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "fit_inrs", dies)
    out = tmp_path / "s.pt"
    with pytest.raises(KeyboardInterrupt):
        _build(source, out)
    with pytest.raises(
        ValueError, match=r"unfinished run with other settings \(steps: 500 -> 50\)"
    ):
        _build(source, out, steps=50)


def test_cli_fits_a_subset(tmp_path: Path) -> None:
    out = tmp_path / "cli.pt"
    run = subprocess.run(
        [sys.executable, "-m", "nngraph.fit", "fit.subset=5", "data.views=2", f"fit.out={out}",
         "fit.progress=false"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "20 INRs" in run.stdout and "median PSNR" in run.stdout
    assert len(load_store(out)) == 20
    assert list(tmp_path.iterdir()) == [out]  # nothing else written (no hydra output folders)


def test_cli_unknown_data_lists_the_known_sources(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "nngraph.fit", "data=imagenet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode != 0
    for name in ("digits", "mnist", "fashion_mnist", "cifar10", "image_folder"):
        assert name in run.stderr


def test_overwrite_runs_resume_too(source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "s.pt"
    _build(source, out, views=1)  # an old store with other settings
    real_fit, calls = build.fit_inrs, []

    def dies_on_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(build, "fit_inrs", dies_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        _build(source, out, overwrite=True)
    calls.clear()
    monkeypatch.setattr(build, "fit_inrs", lambda *a, **k: (calls.append(1), real_fit(*a, **k))[1])
    store = _build(source, out, overwrite=True)
    assert len(calls) == 5 and len(store) == 48  # chunk 0 of 6 was kept, not refitted


def test_bad_input_writes_nothing(source, tmp_path: Path) -> None:
    bad = build.ImageSource(
        "digits", source.images.clone(), source.labels, source.is_test, source.class_names
    )
    bad.images[-1, 0, 0, 0] = 1.5  # only the last image is out of range
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        _build(bad, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="need views >= 1"):
        _build(source, tmp_path / "zero.pt", views=0)
    assert list(tmp_path.iterdir()) == []


def test_a_cached_store_is_not_served_for_other_images(source, tmp_path: Path) -> None:
    out = tmp_path / "s.pt"
    _build(source, out)
    other = build.ImageSource(
        "digits", source.images.flip(1), source.labels, source.is_test, source.class_names
    )
    with pytest.raises(ValueError, match=r"other settings \(content:"):
        _build(other, out)


def test_missing_required_config_value_is_explained(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir

    import nngraph
    from nngraph.fit import run_fit

    configs = nngraph.config_dir()
    with initialize_config_dir(str(configs), version_base=None):
        cfg = compose("fit", overrides=["data=image_folder", f"data_dir={tmp_path}"])
    with pytest.raises(
        ValueError, match=r"data=image_folder needs a value for data.root.*data.root=/path"
    ):
        run_fit(cfg)


def test_a_store_fitted_from_another_init_is_not_served(source, tmp_path: Path) -> None:
    out = tmp_path / "s.pt"
    _build(source, out, init="siren", steps=20, target_psnr=None)
    with pytest.raises(ValueError, match=r"other settings \(init: 'siren' -> 'dwsnets'\)"):
        _build(source, out, steps=20, target_psnr=None)
    with pytest.raises(ValueError, match="unknown SIREN init 'xavier'"):
        _build(source, tmp_path / "t.pt", init="xavier")
    assert not (tmp_path / "t.pt").exists()
