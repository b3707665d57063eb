"""The neural graph: a network as a PyG graph (neurons: nodes, weights: edges, biases: x)."""

from nngraph.graph import cnn as _cnn  # noqa: F401  (registers the "cnn" family)
from nngraph.graph import mlp as _mlp  # noqa: F401  (registers the "mlp" family)
from nngraph.graph.convert import (
    from_module,
    from_params,
    from_state_dict,
    graph_spec,
    num_graphs,
    to_graph_batch,
    to_module,
    to_params,
    to_state_dict,
)
from nngraph.graph.nx import to_networkx
from nngraph.graph.relabel import random_perms, random_relabel, relabel, relabel_indices
from nngraph.graph.spec import (
    ROLE_HIDDEN,
    ROLE_INPUT,
    ROLE_OUTPUT,
    ArchFamily,
    ArchSpec,
    GraphTemplates,
    get_family,
    register_family,
    registered_families,
)
from nngraph.graph.validate import check_finite
from nngraph.graph.view import GraphView

__all__ = [
    "ROLE_HIDDEN",
    "ROLE_INPUT",
    "ROLE_OUTPUT",
    "ArchFamily",
    "ArchSpec",
    "GraphTemplates",
    "GraphView",
    "check_finite",
    "from_module",
    "from_params",
    "from_state_dict",
    "get_family",
    "graph_spec",
    "num_graphs",
    "random_perms",
    "random_relabel",
    "register_family",
    "registered_families",
    "relabel",
    "relabel_indices",
    "to_graph_batch",
    "to_module",
    "to_networkx",
    "to_params",
    "to_state_dict",
]
