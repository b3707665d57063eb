"""Draw a neural graph: inputs left, outputs right, one column per layer; nodes coloured by bias,
edges coloured by weight (sign) and drawn with alpha and width by magnitude, thinned to the
strongest ones on wide networks. Everything goes through networkx, so the same graph exports to
other tools (``nx.write_graphml``)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from nngraph.graph.convert import Graph
from nngraph.graph.nx import to_networkx

__all__ = ["draw_neural_graph", "layered_layout", "relabel_figure"]


def layered_layout(g: nx.DiGraph) -> dict[int, tuple[float, float]]:
    """Node -> (x, y): x is the layer, y spreads a layer's neurons over [-1, 1] in index order."""
    sizes: dict[int, int] = {}
    for _, d in g.nodes(data=True):
        sizes[d["layer"]] = sizes.get(d["layer"], 0) + 1
    pos = {}
    for n, d in g.nodes(data=True):
        size = sizes[d["layer"]]
        y = 0.0 if size == 1 else 1.0 - 2.0 * d["index"] / (size - 1)
        pos[n] = (float(d["layer"]), y)
    return pos


def draw_neural_graph(
    graph: Graph | nx.DiGraph,
    *,
    ax: Axes | None = None,
    max_edges: int = 1500,
    labels: bool = False,
    highlight: set[int] | None = None,
    title: str | None = None,
) -> Figure:
    """Draw one neural graph (a PyG ``Data`` or its networkx form). Edges beyond ``max_edges`` are
    thinned to the largest-magnitude ones; alpha and width grow with |weight| so dense layers stay
    legible. ``highlight`` rings the given nodes (e.g. the neurons a relabeling moved)."""
    g = graph if isinstance(graph, nx.DiGraph) else to_networkx(graph)
    fig = ax.figure if ax is not None else plt.figure(figsize=(7, 5))
    ax = ax if ax is not None else fig.add_subplot(111)
    pos = layered_layout(g)
    edges = list(g.edges(data="weight"))
    weights = np.array([w for _, _, w in edges], dtype=float)
    if len(edges) > max_edges:
        keep = np.argsort(-np.abs(weights))[:max_edges]
        edges, weights = [edges[i] for i in keep], weights[keep]
    scale = np.abs(weights).max() if len(weights) else 1.0
    mag = np.abs(weights) / (scale or 1.0)
    colors = plt.cm.coolwarm((np.sign(weights) * mag + 1) / 2)
    colors[:, 3] = 0.08 + 0.8 * mag  # faint small weights, clear big ones
    nx.draw_networkx_edges(
        g, pos, edgelist=[(u, v) for u, v, _ in edges], edge_color=colors,
        width=0.3 + 1.7 * mag, arrows=False, ax=ax,
    )  # fmt: skip
    biases = np.array([d["bias"] for _, d in g.nodes(data=True)], dtype=float)
    bscale = np.abs(biases).max() or 1.0
    n_nodes = g.number_of_nodes()
    size = max(12, min(120, 6000 / max(n_nodes, 1)))
    nodes = nx.draw_networkx_nodes(
        g, pos, node_color=biases, cmap="coolwarm", vmin=-bscale, vmax=bscale,
        node_size=size, edgecolors="black", linewidths=0.3, ax=ax,
    )  # fmt: skip
    if highlight:
        nx.draw_networkx_nodes(
            g, pos, nodelist=sorted(highlight), node_color="none", edgecolors="gold",
            linewidths=2.0, node_size=size * 2.2, ax=ax,
        )  # fmt: skip
    if labels:
        nx.draw_networkx_labels(g, pos, {n: str(d["index"]) for n, d in g.nodes(data=True)},
                                font_size=6, ax=ax)  # fmt: skip
    fig.colorbar(nodes, ax=ax, label="bias", fraction=0.04, pad=0.01)
    shown = (
        f", strongest {len(edges)} of {g.number_of_edges()} weights"
        if len(edges) < g.number_of_edges()
        else ""
    )
    ax.set_title(title or f"{g.graph.get('name', 'neural graph')}{shown}", fontsize=9)
    ax.set_xlabel("layer (inputs left, outputs right); edges: red > 0, blue < 0")
    ax.set_yticks([])
    return fig


def relabel_figure(graph: Graph, relabeled: Graph, moved: set[int] | None = None) -> Figure:
    """A graph and a relabeling of it side by side (same function, different drawing), the moved
    neurons ringed. ``moved`` defaults to the nodes whose bias changed."""
    a, b = to_networkx(graph), to_networkx(relabeled)
    if moved is None:
        moved = {n for n in a.nodes if a.nodes[n]["bias"] != b.nodes[n]["bias"]}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    draw_neural_graph(a, ax=axes[0], highlight=moved, title="original")
    draw_neural_graph(
        b, ax=axes[1], highlight=moved, title=f"relabeled ({len(moved)} neurons moved)"
    )
    fig.tight_layout()
    return fig
