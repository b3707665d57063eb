"""The INR rendering helper returns figures of the images the INRs draw, and writes nothing."""

from __future__ import annotations

from pathlib import Path

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
    fit = fit_inrs(digits.images[:3], spec, steps=200, progress=False)
    g = to_graph_batch(fit.params, spec)
    images = render_graphs(g, 8, 8)
    assert images.shape == (3, 8, 8, 1)
    assert float(((images - digits.images[:3]) ** 2).mean()) < 1e-3  # the digits themselves
    rows = [build_augmentation(name, seed=0)(g) for name in ("siren_neg", "rotate")]
    fig = augmentation_figure(g, rows, height=16, width=16, n=3, titles=["original", "neg", "rot"])
    assert isinstance(fig, Figure) and len(fig.axes) == 9
    assert [ax.get_ylabel() for ax in fig.axes[::3]] == ["original", "neg", "rot"]
    assert list(tmp_path.iterdir()) == []
