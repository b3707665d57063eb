"""Models that read neural graphs: relational transformer (dense and sparse attention),
DWSNets-equivalent message passing, PNA, and the baselines: the flat MLP and StatNN."""

from __future__ import annotations

from typing import Any

from nngraph.graph.spec import ArchSpec
from nngraph.models.base import Embeddings, WeightSpaceModel, check_compatible
from nngraph.models.dws import DWSLayer, DWSNet
from nngraph.models.heads import MLPHead
from nngraph.models.mlp import FlatMLP
from nngraph.models.pna import PNANet
from nngraph.models.relational_transformer import RelationalTransformer, RTLayer
from nngraph.models.statnn import StatNN

__all__ = [
    "MODELS",
    "DWSLayer",
    "DWSNet",
    "Embeddings",
    "FlatMLP",
    "MLPHead",
    "PNANet",
    "RTLayer",
    "RelationalTransformer",
    "StatNN",
    "WeightSpaceModel",
    "build_model",
    "check_compatible",
]

MODELS: dict[str, type[WeightSpaceModel]] = {
    "relational_transformer": RelationalTransformer,
    "dws": DWSNet,
    "pna": PNANet,
    "mlp": FlatMLP,
    "statnn": StatNN,
}


#: size settings of the models: integers >= 1 wherever a model takes them
SIZES = frozenset({"hidden", "out_dim", "n_layers", "d_node", "d_edge", "d_attn", "heads",
                   "d_node_hidden", "d_edge_hidden"})  # fmt: skip


def build_model(name: str, spec: ArchSpec, **kwargs: Any) -> WeightSpaceModel:
    """The encoder called ``name`` (``model=`` in the configs) for networks of ``spec``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    for key in SIZES.intersection(kwargs):  # a width of 0 trains a constant without complaint
        value = kwargs[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"model.kwargs.{key}={value!r} is not allowed: it must be an "
                             "integer >= 1")  # fmt: skip
    try:
        return MODELS[name](spec, **kwargs)
    except TypeError as err:
        if "unexpected keyword" not in str(err):
            raise
        raise ValueError(f"bad settings for model {name!r}: {err}") from err
