"""Pictures of INRs, neural graphs and runs (functions return matplotlib figures; nothing pops a
window). ``python -m nngraph.viz RUN_DIR`` writes a finished run's figures as PNGs."""

from nngraph.viz.graph import draw_neural_graph, layered_layout, relabel_figure
from nngraph.viz.inr import augmentation_figure, mixup_figure, render_graphs
from nngraph.viz.shapes import (
    Mesh,
    reconstruct_mesh,
    sdf_grid,
    shape_augmentation_figure,
    shape_figure,
    shape_mixup_figure,
    write_ply,
)
from nngraph.viz.training import (
    confusion_figure,
    curves_figure,
    embedding_figure,
    loss_curves_figure,
    write_run_figures,
)

__all__ = [
    "Mesh",
    "augmentation_figure",
    "confusion_figure",
    "curves_figure",
    "draw_neural_graph",
    "embedding_figure",
    "layered_layout",
    "loss_curves_figure",
    "mixup_figure",
    "reconstruct_mesh",
    "relabel_figure",
    "render_graphs",
    "sdf_grid",
    "shape_augmentation_figure",
    "shape_figure",
    "shape_mixup_figure",
    "write_ply",
    "write_run_figures",
]
