"""networkx export keeps every neuron, weight and bias where the architecture says."""

from __future__ import annotations

import itertools

import pytest

from nngraph.graph import ArchSpec, from_module, to_graph_batch, to_networkx
from tests.helpers import random_network, random_params


def test_networkx_export(spec: ArchSpec) -> None:
    net = random_network(spec, seed=5)
    nxg = to_networkx(from_module(net))
    sizes = spec.layer_sizes
    assert nxg.number_of_nodes() == sum(sizes)
    assert nxg.number_of_edges() == sum(a * b for a, b in itertools.pairwise(sizes))
    assert nxg.graph["spec"] == spec.to_dict()
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    for layer, lin in enumerate(net.seq):
        i, j = lin.out_features - 1, lin.in_features - 1  # last neuron of each side
        src, dst = starts[layer] + j, starts[layer + 1] + i
        assert nxg.edges[src, dst]["weight"] == pytest.approx(lin.weight[i, j].item(), abs=0)
        assert nxg.nodes[dst]["bias"] == pytest.approx(lin.bias[i].item(), abs=0)
        assert nxg.nodes[dst]["layer"] == layer + 1 and nxg.nodes[dst]["index"] == i
    assert nxg.nodes[0]["role"] == "input" and nxg.nodes[sum(sizes) - 1]["role"] == "output"
    assert all(d["bias"] == 0.0 for _, d in nxg.nodes(data=True) if d["role"] == "input")


def test_networkx_refuses_batches() -> None:
    spec = ArchSpec.siren(hidden_dim=3)
    with pytest.raises(ValueError, match="batch of 2"):
        to_networkx(to_graph_batch(random_params(spec, 2), spec))
    assert to_networkx(to_graph_batch(random_params(spec, 1), spec)).number_of_nodes() == 9
