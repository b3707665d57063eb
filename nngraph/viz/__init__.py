"""Pictures of INRs and neural graphs (matplotlib figures; nothing pops a window)."""

from nngraph.viz.inr import augmentation_figure, render_graphs

__all__ = ["augmentation_figure", "render_graphs"]
