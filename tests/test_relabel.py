"""Relabeling hidden neurons: a node relabeling of the graph that preserves the decoded function."""

from __future__ import annotations

import pytest
import torch

from nngraph.graph import (
    ArchSpec,
    from_module,
    random_perms,
    random_relabel,
    relabel,
    relabel_indices,
    to_graph_batch,
    to_module,
    to_params,
    to_state_dict,
)
from nngraph.inr import mlp_forward
from tests.helpers import SPECS, random_network, random_params, spec_id

HIDDEN_SPECS = [s for s in SPECS if len(s.layer_sizes) > 2]


@pytest.mark.parametrize("spec", HIDDEN_SPECS, ids=spec_id)
def test_hundred_random_relabelings_preserve_the_function(spec: ArchSpec) -> None:
    net = random_network(spec, seed=7)
    g = from_module(net)
    x = torch.rand(256, spec.in_dim) * 2 - 1
    reference = net(x)
    params = to_params(g)
    gen = torch.Generator().manual_seed(0)
    for _ in range(100):
        h = random_relabel(g, generator=gen)
        assert not torch.equal(to_params(h), params)  # the raw parameters moved...
        assert torch.equal(h.edge_index, g.edge_index)  # ...over the same graph structure...
        torch.testing.assert_close(
            to_module(h)(x), reference, rtol=0, atol=1e-6
        )  # ...same function


def test_explicit_permutation_matches_permuting_the_weights() -> None:
    spec = ArchSpec((3, 4, 5, 2), activation="sine")
    g = from_module(random_network(spec))
    p1, p2 = torch.tensor([2, 0, 3, 1]), torch.tensor([4, 1, 0, 3, 2])
    sd = to_state_dict(g)
    expected = {
        "seq.0.weight": sd["seq.0.weight"][p1],
        "seq.0.bias": sd["seq.0.bias"][p1],
        "seq.1.weight": sd["seq.1.weight"][p2][:, p1],
        "seq.1.bias": sd["seq.1.bias"][p2],
        "seq.2.weight": sd["seq.2.weight"][:, p2],
        "seq.2.bias": sd["seq.2.bias"],
    }
    got = to_state_dict(relabel(g, [p1, p2]))
    for key, value in expected.items():
        assert torch.equal(got[key], value), key
    node_idx, _ = relabel_indices(spec, [p1, p2], 1)
    assert torch.equal(relabel(g, [p1, p2]).x, g.x[node_idx])
    assert torch.equal(node_idx[3:7], 3 + p1)  # hidden layer 1 starts at node 3


def test_inverse_and_composition(spec: ArchSpec) -> None:
    g = from_module(random_network(spec, seed=2))
    gen = torch.Generator().manual_seed(1)
    p = [q[0] for q in random_perms(spec, 1, generator=gen)]
    q = [r[0] for r in random_perms(spec, 1, generator=gen)]
    inverse = [torch.argsort(a) for a in p]
    assert torch.equal(to_params(relabel(relabel(g, p), inverse)), to_params(g))
    composed = [a[b] for a, b in zip(p, q)]
    assert torch.equal(to_params(relabel(relabel(g, p), q)), to_params(relabel(g, composed)))


@pytest.mark.parametrize("spec", HIDDEN_SPECS, ids=spec_id)
def test_batch_relabel_is_independent_per_sample_and_preserves_every_function(
    spec: ArchSpec,
) -> None:
    params = random_params(spec, 16, seed=4)
    batch = to_graph_batch(params, spec)
    relabeled, perms = random_relabel(batch, torch.Generator().manual_seed(3), return_perms=True)
    assert all(p.shape == (16, n) for p, n in zip(perms, spec.layer_sizes[1:-1]))
    assert len({tuple(row.tolist()) for row in perms[0]}) > 1  # not one permutation for all
    new_params = to_params(relabeled)
    assert not any(torch.equal(a, b) for a, b in zip(new_params, params))
    x = torch.rand(64, spec.in_dim) * 2 - 1
    torch.testing.assert_close(
        mlp_forward(new_params, x, spec), mlp_forward(params, x, spec), rtol=0, atol=1e-5
    )
    # a batch relabel is the per-graph relabel of each example
    for i in (0, 9, 15):
        single = relabel(batch.get_example(i), [p[i] for p in perms])
        assert torch.equal(to_params(single), new_params[i])


def test_seeded_generator_is_reproducible() -> None:
    spec = ArchSpec.siren()
    batch = to_graph_batch(random_params(spec, 8), spec)
    a = random_relabel(batch, torch.Generator().manual_seed(5))
    b = random_relabel(batch, torch.Generator().manual_seed(5))
    c = random_relabel(batch, torch.Generator().manual_seed(6))
    assert torch.equal(a.x, b.x) and torch.equal(a.edge_attr, b.edge_attr)
    assert not torch.equal(a.edge_attr, c.edge_attr)


def test_relabel_leaves_the_input_untouched() -> None:
    spec = ArchSpec.siren(hidden_dim=6)
    g = from_module(random_network(spec))
    before = (g.x.clone(), g.edge_attr.clone())
    h = random_relabel(g)
    assert torch.equal(g.x, before[0]) and torch.equal(g.edge_attr, before[1])
    assert h.spec == g.spec and torch.equal(h.layer, g.layer)


@pytest.mark.parametrize(
    ("perms", "match"),
    [
        ([torch.arange(4)], "2 hidden layers, so relabel needs 2 permutations; got 1"),
        ([torch.arange(4), torch.tensor([0, 0, 1, 2, 3])], "layer 2 is not a permutation"),
        ([torch.arange(5), torch.arange(5)], r"layer 1 must have shape \[4\]"),
        ([torch.arange(4.0), torch.arange(5)], "must be an integer tensor"),
    ],
)
def test_bad_permutations_are_explained(perms: list, match: str) -> None:
    g = from_module(random_network(ArchSpec((3, 4, 5, 2))))
    with pytest.raises(ValueError, match=match):
        relabel(g, perms)
