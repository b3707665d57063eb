"""SIREN / MLP modules and the batched functional forward."""

from __future__ import annotations

import pytest
import torch

from nngraph.graph import ArchSpec
from nngraph.inr import MLP, Siren, coordinate_grid, mlp_forward, siren_forward
from tests.helpers import random_network


def test_siren_state_dict_has_dwsnets_layout() -> None:
    m = Siren()
    keys = list(m.state_dict())
    assert keys == [f"seq.{i}.{p}" for i in range(3) for p in ("weight", "bias")]
    assert m.seq[0].weight.shape == (32, 2) and m.seq[2].weight.shape == (1, 32)


def test_siren_computes_dwsnets_formula() -> None:
    m = Siren(hidden_dim=8)
    x = torch.rand(5, 2) * 2 - 1
    w = [m.seq[i].weight for i in range(3)]
    b = [m.seq[i].bias for i in range(3)]
    h = torch.sin(30.0 * (x @ w[0].T + b[0]))
    h = torch.sin(30.0 * (h @ w[1].T + b[1]))
    expected = h @ w[2].T + b[2] + 0.5
    torch.testing.assert_close(m(x), expected, rtol=0, atol=1e-6)


def test_siren_init_bounds() -> None:
    m = Siren(hidden_dim=64)
    assert m.seq[0].weight.abs().max() <= 1 / 2
    assert m.seq[1].weight.abs().max() <= (6 / 64) ** 0.5 / 30
    assert m.seq[0].bias.abs().max() == 0 and m.seq[1].bias.abs().max() == 0
    with pytest.raises(ValueError, match="activation='sine'"):
        Siren(spec=ArchSpec.mlp((2, 4, 1)))


def test_functional_forward_matches_modules(spec: ArchSpec) -> None:
    nets = [random_network(spec, seed) for seed in range(3)]
    params = torch.stack([torch.nn.utils.parameters_to_vector(n.parameters()) for n in nets])
    coords = torch.rand(50, spec.in_dim) * 2 - 1
    out = mlp_forward(params.detach(), coords, spec)
    assert out.shape == (3, 50, spec.out_dim)
    for i, net in enumerate(nets):
        torch.testing.assert_close(out[i], net(coords).detach(), rtol=1e-5, atol=1e-5)
    # per-network coordinates
    per_net = torch.rand(3, 7, spec.in_dim)
    out = siren_forward(params.detach(), per_net, spec)
    for i, net in enumerate(nets):
        torch.testing.assert_close(out[i], net(per_net[i]).detach(), rtol=1e-5, atol=1e-5)


def test_functional_forward_rejects_wrong_shapes() -> None:
    spec = ArchSpec.siren()
    with pytest.raises(ValueError, match=r"\[B, 1185\]"):
        mlp_forward(torch.zeros(2, 1184), coordinate_grid(4, 4), spec)
    with pytest.raises(ValueError, match="coords"):
        mlp_forward(torch.zeros(2, 1185), torch.zeros(4, 3), spec)


def test_coordinate_grid_convention() -> None:
    c = coordinate_grid(3, 4)
    assert c.shape == (12, 2)
    assert torch.equal(c[0], torch.tensor([-1.0, -1.0]))
    assert torch.equal(c[3], torch.tensor([1.0, -1.0]))  # first coordinate runs along a row
    assert torch.equal(c[-1], torch.tensor([1.0, 1.0]))


def test_mlp_module_for_relu_spec_has_no_offset() -> None:
    spec = ArchSpec.mlp((3, 5, 2))
    m = random_network(spec)
    x = torch.randn(4, 3)
    expected = torch.relu(x @ m.seq[0].weight.T + m.seq[0].bias) @ m.seq[1].weight.T + m.seq[1].bias
    torch.testing.assert_close(m(x), expected)
    assert isinstance(m, MLP) and not isinstance(m, Siren)
