"""The INR rendering helper returns figures of the images the INRs draw, and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from nngraph.augment import build_augmentation
from nngraph.data import load_source
from nngraph.graph import ArchSpec, to_graph_batch
from nngraph.inr import fit_inrs
from nngraph.viz import augmentation_figure, render_graphs


def test_augmentation_figure(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = ArchSpec.siren()
    digits = load_source("digits")
    fit = fit_inrs(digits.images[:3], spec, steps=1000, progress=False)
    g = to_graph_batch(fit.params, spec)
    images = render_graphs(g, 8, 8)
    assert images.shape == (3, 8, 8, 1)
    assert float(((images - digits.images[:3]) ** 2).mean()) < 1e-3  # the digits themselves
    rows = [build_augmentation(name, seed=0)(g) for name in ("siren_neg", "rotate")]
    fig = augmentation_figure(g, rows, height=16, width=16, n=3, titles=["original", "neg", "rot"])
    assert isinstance(fig, Figure) and len(fig.axes) == 9
    assert [ax.get_ylabel() for ax in fig.axes[::3]] == ["original", "neg", "rot"]
    assert list(tmp_path.iterdir()) == []


def test_graph_drawings_run_through_networkx_and_thin_wide_networks(tmp_path):
    import re

    import matplotlib.pyplot as plt
    import torch

    from nngraph.graph import ArchSpec, from_module
    from nngraph.inr import Siren
    from nngraph.viz import draw_neural_graph, relabel_figure

    g = from_module(Siren(hidden_dim=32))
    fig = draw_neural_graph(g)
    assert len(fig.axes[0].collections) >= 2  # edges and nodes
    fig.savefig(tmp_path / "g.png")
    wide = from_module(Siren(hidden_dim=128))
    fig = draw_neural_graph(wide, max_edges=500)
    assert re.search(r"strongest \d+ of 16768 weights", fig.axes[0].get_title())
    perms = [torch.arange(32).roll(1), torch.arange(32)]  # every neuron of hidden layer 1 moves
    fig = relabel_figure(g, perms)
    assert fig.axes[1].get_title() == "relabeled (32 neurons moved)"
    relabel_figure(g, generator=torch.Generator().manual_seed(0))
    plt.close("all")
    assert ArchSpec.siren().num_nodes == 67


def test_run_figures_cli_writes_pngs(tmp_path):
    import json
    import subprocess
    import sys

    import torch

    from nngraph.io import atomic_torch_save

    (tmp_path / "metrics.jsonl").write_text(
        "\n".join(
            json.dumps({"step": s, "train_loss": 2.0 / s, "val_loss": 2.1 / s, "val_acc": s / 10})
            for s in range(1, 6)
        )
    )
    y = torch.arange(40) % 10
    atomic_torch_save(
        {"pred": y.roll(1), "target": y, "embedding": torch.randn(40, 8), "class_names": []},
        tmp_path / "test_outputs.pt",
    )
    out = subprocess.run(
        [sys.executable, "-m", "nngraph.viz", str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    for name in ("curves.png", "confusion.png", "embeddings.png"):
        assert (tmp_path / name).stat().st_size > 1000
    bad = subprocess.run(
        [sys.executable, "-m", "nngraph.viz", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "no metrics.jsonl" in bad.stderr


def test_loss_curves_figure_draws_train_and_validation_per_run() -> None:
    from nngraph.viz import loss_curves_figure

    records = [{"step": s, "train_loss": 2 / s, "val_loss": 1 + s / 100} for s in (1, 2, 3)]
    fig = loss_curves_figure({"none": records, "mixup_align": records[:2]}, title="t")
    lines = fig.axes[0].get_lines()
    assert len(lines) == 4 and [len(line.get_xdata()) for line in lines] == [3, 3, 2, 2]
    assert fig.axes[0].get_legend() is not None
    with pytest.raises(ValueError, match="at least one run"):
        loss_curves_figure({"none": []})
