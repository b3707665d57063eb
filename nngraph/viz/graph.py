"""Draw a neural graph: inputs left, outputs right, one column per layer; nodes coloured by bias,
edges coloured by weight (sign) and drawn with alpha and width by magnitude within their layer,
thinned to the strongest ones on wide networks. Everything goes through networkx, so the same
graph exports to other tools (``nx.write_graphml``)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from nngraph.graph.convert import Graph, graph_spec
from nngraph.graph.nx import to_networkx
from nngraph.graph.relabel import random_perms, relabel

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


def _edge_scalar(weight: float | list[float]) -> float:
    if not isinstance(weight, list):
        return float(weight)
    w = np.asarray(weight, dtype=float)
    return float(np.sign(w.sum()) * np.linalg.norm(w))


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
    thinned to the largest-magnitude ones of each layer; alpha and width grow with |weight| relative
    to its layer's largest, so every layer stays legible. ``highlight`` rings the given nodes
    (e.g. the neurons a relabeling moved)."""
    g = graph if isinstance(graph, nx.DiGraph) else to_networkx(graph)
    unknown = sorted(set(highlight or ()) - set(g.nodes))
    if unknown:
        raise ValueError(f"highlight names nodes the graph does not have: {unknown[:5]} (it has "
                         f"nodes 0..{g.number_of_nodes() - 1})")  # fmt: skip
    fig = ax.figure if ax is not None else plt.figure(figsize=(7, 5))
    ax = ax if ax is not None else fig.add_subplot(111)
    pos = layered_layout(g)
    edges = list(g.edges(data=True))
    # a kernel (CNN edge) is drawn by its norm, signed by its sum
    weights = np.array([_edge_scalar(d["weight"]) for _, _, d in edges], dtype=float)
    layer = np.array([d["layer"] for _, _, d in edges])
    # magnitudes relative to each weight layer's largest (SIREN layers differ in scale by 30x),
    # and thinning per layer, so every layer stays visible
    mag = np.zeros_like(weights)
    keep = np.zeros(len(edges), dtype=bool)
    layers = np.unique(layer)
    budget = len(edges) if len(edges) <= max_edges else max(1, max_edges // max(len(layers), 1))
    for lay in layers:
        idx = np.nonzero(layer == lay)[0]
        top = np.abs(weights[idx]).max() or 1.0
        mag[idx] = np.abs(weights[idx]) / top
        keep[idx[np.argsort(-mag[idx])[:budget]]] = True
    shown = int(keep.sum())
    edges, weights, mag = [edges[i] for i in np.nonzero(keep)[0]], weights[keep], mag[keep]
    order = np.argsort(mag)  # strongest drawn last, on top
    edges, weights, mag = [edges[i] for i in order], weights[order], mag[order]
    colors = plt.cm.coolwarm((np.sign(weights) * mag + 1) / 2)
    dense = min(1.0, 300.0 / max(shown, 1)) ** 0.5  # fainter when many edges are drawn
    colors[:, 3] = (0.05 + 0.85 * mag) * max(dense, 0.25)
    nx.draw_networkx_edges(
        g, pos, edgelist=[(u, v) for u, v, _ in edges], edge_color=colors,
        width=0.2 + 1.6 * mag * max(dense, 0.4), arrows=False, ax=ax,
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
    vector = bool(edges) and isinstance(edges[0][2]["weight"], list)
    what = "kernel norm, signed by its sum" if vector else "|w|"
    ax.set_xlabel(f"layer (inputs left, outputs right); edges: red > 0, blue < 0, opacity: {what}")
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def relabel_figure(
    graph: Graph,
    perms: Sequence[Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> Figure:
    """A graph and a relabeling of it side by side (same function, different drawing), with the
    neurons that changed place ringed. ``perms``: one permutation per hidden layer (as for
    :func:`nngraph.graph.relabel`); random when not given."""
    spec = graph_spec(graph)
    if perms is None:
        perms = [p[0] for p in random_perms(spec, 1, generator=generator)]
    starts = spec.templates.layer_start
    moved = {
        starts[k + 1] + i for k, p in enumerate(perms) for i in range(len(p)) if int(p[i]) != i
    }
    a, b = to_networkx(graph), to_networkx(relabel(graph, list(perms)))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    draw_neural_graph(a, ax=axes[0], highlight=moved, title="original")
    draw_neural_graph(
        b, ax=axes[1], highlight=moved, title=f"relabeled ({len(moved)} neurons moved)"
    )
    fig.tight_layout()
    return fig
