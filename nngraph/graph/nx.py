"""Export a neural graph to networkx, for drawing and for other graph tools."""

from __future__ import annotations

import networkx as nx
from torch_geometric.data import Data

from nngraph.graph.convert import graph_spec, num_graphs
from nngraph.graph.spec import ROLE_NAMES

__all__ = ["to_networkx"]


def to_networkx(g: Data) -> nx.DiGraph:
    """One neural graph -> ``networkx.DiGraph``.

    Nodes carry ``layer``, ``index`` (position within the layer), ``role`` ("input" / "hidden" /
    "output") and ``bias``; edges carry ``weight`` and ``layer``; the graph carries ``spec``
    (a dict).
    Scalar features are floats, vector features (e.g. conv kernels) lists.
    """
    if num_graphs(g) != 1:
        raise ValueError(
            f"to_networkx takes one graph, got a batch of {num_graphs(g)}; use batch.get_example(i)"
        )
    spec = graph_spec(g)
    t = spec.templates
    out = nx.DiGraph(spec=spec.to_dict(), name=str(spec))
    biases = _features(g.x)
    out.add_nodes_from(
        (i, {"layer": layer, "index": local, "role": ROLE_NAMES[role], "bias": bias})
        for i, (layer, local, role, bias) in enumerate(
            zip(t.layer.tolist(), t.node_local.tolist(), t.role.tolist(), biases)
        )
    )
    src, dst = g.edge_index.tolist()
    out.add_edges_from(
        (s, d, {"weight": w, "layer": layer})
        for s, d, w, layer in zip(src, dst, _features(g.edge_attr), t.edge_layer.tolist())
    )
    return out


def _features(values) -> list:
    rows = values.detach().cpu().tolist()
    return [r[0] for r in rows] if values.shape[1] == 1 else rows
