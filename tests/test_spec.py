"""ArchSpec: validation, serialisation, and templates whose counts match the architecture."""

from __future__ import annotations

import itertools

import pytest
import torch

from nngraph.graph import ROLE_HIDDEN, ROLE_INPUT, ROLE_OUTPUT, ArchSpec, get_family
from nngraph.graph.validate import param_key


def test_counts_match_architecture(spec: ArchSpec) -> None:
    sizes = spec.layer_sizes
    pairs = list(itertools.pairwise(sizes))
    t = spec.templates
    assert t.num_nodes == spec.num_nodes == sum(sizes)
    assert t.num_edges == spec.num_edges == sum(a * b for a, b in pairs)
    assert t.num_params == spec.num_params == sum(a * b + b for a, b in pairs)
    assert t.edge_index.shape == (2, t.num_edges)
    # every parameter sits in exactly one node or edge feature
    used = torch.cat([t.edge_param_idx.flatten(), t.node_param_flat])
    assert torch.equal(used.sort().values, torch.arange(spec.num_params))
    # edges only join consecutive layers, from layer l to l + 1
    src, dst = t.edge_index
    assert torch.equal(t.layer[dst] - t.layer[src], torch.ones(t.num_edges, dtype=torch.long))
    assert torch.equal(t.layer[src], t.edge_layer)
    # roles: inputs, hidden, outputs in that order and the right numbers
    assert int((t.role == ROLE_INPUT).sum()) == sizes[0]
    assert int((t.role == ROLE_OUTPUT).sum()) == sizes[-1]
    assert int((t.role == ROLE_HIDDEN).sum()) == sum(sizes[1:-1])


def test_fmnist_siren_sizes() -> None:
    spec = ArchSpec.siren()
    assert spec.layer_sizes == (2, 32, 32, 1)
    assert (spec.num_nodes, spec.num_edges, spec.num_params) == (67, 1120, 1185)


def test_dict_round_trip(spec: ArchSpec) -> None:
    again = ArchSpec.from_dict(spec.to_dict())
    assert again == spec and hash(again) == hash(spec)
    assert again.templates is spec.templates  # cached per spec


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layer_sizes": (3,)}, "at least an input and an output"),
        ({"layer_sizes": (2, 0, 1)}, r"layer_sizes\[1\]"),
        ({"layer_sizes": (2, 3.5, 1)}, r"layer_sizes\[1\]"),
        ({"layer_sizes": (2, 4, 1), "activation": "swish"}, "unknown activation 'swish'"),
        ({"layer_sizes": (2, 4, 1), "w0": -1.0}, "w0"),
    ],
)
def test_bad_specs_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ArchSpec(**kwargs)


def test_unknown_family_names_the_registered_ones() -> None:
    spec = ArchSpec((2, 3, 1), family="transformer")
    with pytest.raises(ValueError, match=r"unknown architecture family 'transformer'.*'mlp'"):
        _ = spec.templates
    with pytest.raises(ValueError, match="unknown architecture family"):
        get_family("transformer")


def test_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="unknown ArchSpec fields"):
        ArchSpec.from_dict({"layer_sizes": [2, 1], "depth": 3})


def test_param_key_names_the_layer() -> None:
    spec = ArchSpec.siren()
    assert param_key(spec, 0) == "seq.0.weight"
    assert param_key(spec, 63) == "seq.0.weight"
    assert param_key(spec, 64) == "seq.0.bias"
    assert param_key(spec, 96) == "seq.1.weight"
    assert param_key(spec, spec.num_params - 1) == "seq.2.bias"


def test_templates_follow_the_device_on_request() -> None:
    spec = ArchSpec.siren()
    assert spec.templates_on("cpu").edge_index.device.type == "cpu"
    assert spec.templates_on("cpu") is spec.templates_on(torch.device("cpu"))


def test_numpy_sizes_are_plain_ints_and_bad_offsets_are_refused() -> None:
    import numpy as np

    spec = ArchSpec(tuple(np.array([2, 8, 1])))
    assert spec.layer_sizes == (2, 8, 1) and all(type(s) is int for s in spec.layer_sizes)
    for bad in (None, float("nan"), "x"):
        with pytest.raises(ValueError, match="out_offset must be a finite number"):
            ArchSpec((2, 1), out_offset=bad)
