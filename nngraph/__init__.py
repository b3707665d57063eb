"""nngraph: learning on the weights of neural networks, each network a PyTorch Geometric graph."""

from nngraph import graph, inr
from nngraph.graph import ArchSpec, from_module, to_graph_batch, to_module
from nngraph.inr import Siren

__version__ = "0.1.0"

__all__ = [
    "ArchSpec",
    "Siren",
    "__version__",
    "from_module",
    "graph",
    "inr",
    "to_graph_batch",
    "to_module",
]
