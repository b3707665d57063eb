"""nngraph: learning on the weights of neural networks, each network a PyTorch Geometric graph."""

from pathlib import Path

from nngraph import graph, inr
from nngraph.graph import ArchSpec, from_module, to_graph_batch, to_module
from nngraph.inr import Siren

__version__ = "0.1.0"

__all__ = [
    "ArchSpec",
    "Siren",
    "__version__",
    "config_dir",
    "from_module",
    "graph",
    "inr",
    "to_graph_batch",
    "to_module",
]


def config_dir() -> Path:
    """The folder of the Hydra config groups (``data/``, ``model/``, ``aug/``, ...): the
    repository's top-level ``configs/`` in a checkout or editable install, ``nngraph/configs``
    (the same files, shipped as package data) in an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parent / "configs"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"nngraph's configs are missing (looked in {here / 'configs'} and "
        f"{here.parent / 'configs'}): reinstall nngraph (pip install .) or use a full checkout"
    )
