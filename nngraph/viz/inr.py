"""Render INRs as images with matplotlib: originals next to their augmented versions."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg", force=False)  # no window, also on machines without a display

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor

from nngraph.graph.convert import Graph, graph_spec, to_params
from nngraph.inr.functional import coordinate_grid, mlp_forward

__all__ = ["augmentation_figure", "mixup_figure", "render_graphs"]


def render_graphs(g: Graph, height: int, width: int) -> Tensor:
    """The images ``[B, H, W, C]`` the INRs of a graph batch draw on a ``height x width`` grid."""
    spec = graph_spec(g)
    with torch.no_grad():
        params = to_params(g).reshape(-1, spec.num_params).float()
        out = mlp_forward(params, coordinate_grid(height, width, device=params.device), spec)
    return out.view(-1, height, width, spec.out_dim).cpu()


def augmentation_figure(
    original: Graph,
    augmented: Graph | Sequence[Graph],
    *,
    height: int = 28,
    width: int = 28,
    n: int = 4,
    titles: Sequence[str] | None = None,
) -> Figure:
    """A grid: one column per INR (first ``n`` of the batch), the original in the top row and each
    augmented batch in a row below it. Returns the figure (nothing is shown or saved)."""
    rows = [original, *(augmented if isinstance(augmented, Sequence) else [augmented])]
    labels = (
        list(titles)
        if titles is not None
        else ["original"] + [f"augmented {i + 1}" for i in range(len(rows) - 1)]
    )
    images = [render_graphs(g, height, width)[:n] for g in rows]
    cols = min(n, len(images[0]))
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.6 * cols, 1.6 * len(rows)), squeeze=False)
    for r, (imgs, label) in enumerate(zip(images, labels)):
        for c in range(cols):
            ax = axes[r][c]
            img = imgs[c].clamp(0, 1).numpy()
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    return fig


def mixup_figure(
    a: Graph,
    b: Graph,
    aligned_b: Graph,
    *,
    lams: Sequence[float] = (1.0, 0.75, 0.5, 0.25, 0.0),
    height: int = 28,
    width: int = 28,
) -> Figure:
    """Two INRs (one graph each) and their interpolations ``lam * a + (1 - lam) * b`` at several
    ``lam``: plain (top row) and with ``b`` aligned to ``a`` first (``aligned_b``, bottom row)."""
    pa, pb, pc = (to_params(g).reshape(1, -1) for g in (a, b, aligned_b))
    spec = graph_spec(a)
    coords = coordinate_grid(height, width)
    fig, axes = plt.subplots(2, len(lams), figsize=(1.6 * len(lams), 3.6), squeeze=False)
    for r, (other, label) in enumerate(((pb, "plain"), (pc, "aligned"))):
        for c, lam in enumerate(lams):
            with torch.no_grad():
                img = mlp_forward(lam * pa + (1 - lam) * other, coords, spec)[0]
            img = img.view(height, width, -1).clamp(0, 1).cpu().numpy()
            ax = axes[r][c]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"λ={lam:g}", fontsize=8)
        axes[r][0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    return fig
