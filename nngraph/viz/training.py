"""Pictures of a run: training curves from ``metrics.jsonl``, a confusion matrix, and a 2-D map
(PCA or t-SNE) of embeddings coloured by class (the paper's Figure 5 for SimCLR features)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from nngraph.train.logging import read_metrics

__all__ = [
    "confusion_figure",
    "curves_figure",
    "embedding_figure",
    "loss_curves_figure",
    "write_run_figures",
]


def curves_figure(metrics: str | os.PathLike | Sequence[dict]) -> Figure:
    """Training loss, validation loss and accuracy against steps."""
    records = read_metrics(metrics) if isinstance(metrics, (str, os.PathLike)) else list(metrics)
    if not records:
        raise ValueError("no metrics to plot: the run has not evaluated yet")
    steps = [r["step"] for r in records]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax_loss.plot(steps, [r["train_loss"] for r in records], label="train", marker=".")
    if all("val_loss" in r for r in records):
        ax_loss.plot(steps, [r["val_loss"] for r in records], label="validation", marker=".")
    ax_loss.set(xlabel="step", ylabel="loss", title="loss")
    ax_loss.legend()
    ax_acc.plot(steps, [r["val_acc"] for r in records], color="tab:green", marker=".")
    ax_acc.set(xlabel="step", ylabel="accuracy", title="validation accuracy", ylim=(0, 1))
    fig.tight_layout()
    return fig


def loss_curves_figure(runs: dict[str, Sequence[dict]], title: str = "") -> Figure:
    """The paper's Figure 1: train (dashed) and validation (solid) loss of several runs, one
    colour per run (``{"none": records, "mixup_align": records}``, records as in
    ``metrics.jsonl``): where validation loss turns up without augmentation, and whether an
    augmentation keeps it down."""
    if not runs or not all(runs.values()):
        raise ValueError("loss_curves_figure needs at least one run with evaluations")
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, records) in enumerate(runs.items()):
        color = f"C{i}"
        steps = [r["step"] for r in records]
        ax.plot(steps, [r["train_loss"] for r in records], "--", color=color, label=f"{name} train")
        if all("val_loss" in r for r in records):
            ax.plot(steps, [r["val_loss"] for r in records], "-", color=color, label=f"{name} val")
    ax.set(xlabel="step", ylabel="cross-entropy loss", title=title or "train vs validation loss")
    ax.legend()
    fig.tight_layout()
    return fig


def confusion_figure(
    target: Tensor, pred: Tensor, class_names: Sequence[str] | None = None
) -> Figure:
    """Row-normalised confusion matrix (true class rows, predicted columns) with counts."""
    k = int(max(int(target.max()), int(pred.max())) + 1)
    k = max(k, len(class_names or []))
    counts = torch.zeros(k, k, dtype=torch.long)
    counts.index_put_((target.long(), pred.long()), torch.ones_like(target.long()), accumulate=True)
    rates = counts.float() / counts.sum(1, keepdim=True).clamp(min=1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * k, 0.8 + 0.45 * k))
    im = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if counts[i, j]:
                color = "white" if rates[i, j] > 0.5 else "black"
                ax.text(
                    j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=7, color=color
                )
    names = list(class_names) if class_names else [str(i) for i in range(k)]
    ax.set_xticks(range(k), names, fontsize=7, rotation=45 if len(names[0]) > 2 else 0)
    ax.set_yticks(range(k), names, fontsize=7)
    acc = (target == pred).float().mean().item()
    ax.set(xlabel="predicted", ylabel="true", title=f"confusion matrix (accuracy {acc:.1%})")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def embedding_figure(
    embedding: Tensor, labels: Tensor, *, method: str = "pca", seed: int = 0
) -> Figure:
    """Embeddings ``[N, D]`` mapped to 2-D (``pca`` or ``tsne``), one colour per class."""
    x = embedding.double().numpy()
    if method == "pca":
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, random_state=seed).fit_transform(x)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, max(2.0, (len(x) - 1) / 3))
        xy = TSNE(n_components=2, perplexity=perplexity, random_state=seed).fit_transform(x)
    else:
        raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    y = labels.numpy()
    for c in np.unique(y):
        ax.scatter(xy[y == c, 0], xy[y == c, 1], s=8, label=str(c), alpha=0.8)
    ax.legend(fontsize=7, markerscale=2, title="class", loc="best")
    ax.set(title=f"embeddings ({method.upper()})", xticks=[], yticks=[])
    fig.tight_layout()
    return fig


def write_run_figures(run_dir: str | os.PathLike, method: str = "pca") -> list[Path]:
    """Write ``curves.png``, ``confusion.png`` and ``embeddings.png`` of a finished run into its
    directory; returns the paths written."""
    from nngraph.io import load_torch_file

    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        raise FileNotFoundError(f"{run_dir} has no metrics.jsonl: is it a train.py run directory?")
    outputs, out = run_dir / "test_outputs.pt", None
    if outputs.is_file():  # read and checked before any figure is written
        out = load_torch_file(outputs, what="test outputs")
        keys = ("pred", "target", "embedding")
        if not isinstance(out, dict) or any(not isinstance(out.get(k), Tensor) for k in keys):
            raise ValueError(f"{outputs} is not a run's test outputs (needs tensors {keys})")
    figures = [("curves.png", curves_figure(metrics))]
    if out is not None:
        names = out.get("class_names") or None
        figures.append(("confusion.png", confusion_figure(out["target"], out["pred"], names)))
        figures.append(
            ("embeddings.png", embedding_figure(out["embedding"], out["target"], method=method))
        )
    written = []
    for name, fig in figures:
        fig.savefig(run_dir / name, dpi=130)
        plt.close(fig)
        written.append(run_dir / name)
    return written
