"""SIREN / MLP modules and the batched functional forward."""

from __future__ import annotations

import pytest
import torch

from nngraph.graph import ArchSpec
from nngraph.inr import (
    MLP,
    Siren,
    coordinate_grid,
    mlp_forward,
    sample_init_params,
    siren_forward,
)
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
    torch.manual_seed(0)
    m = Siren(hidden_dim=64)  # DWSNets' INR: every sine layer U(±sqrt(6/fan_in)/w0)
    first = m.seq[0].weight.abs().max()
    assert (6 / 2) ** 0.5 / 30 * 0.9 < first <= (6 / 2) ** 0.5 / 30
    assert m.seq[1].weight.abs().max() <= (6 / 64) ** 0.5 / 30
    assert m.seq[0].bias.abs().max() == 0 and m.seq[1].bias.abs().max() == 0
    sitzmann = Siren(hidden_dim=64, init="siren").seq[0].weight.abs().max()
    assert 0.9 * 1 / 2 < sitzmann <= 1 / 2  # Sitzmann et al.'s first layer U(±1/fan_in)
    with pytest.raises(ValueError, match="activation='sine'"):
        Siren(spec=ArchSpec.mlp((2, 4, 1)))
    with pytest.raises(ValueError, match="unknown SIREN init"):
        Siren(init="kaiming")


@pytest.mark.parametrize("init", ["dwsnets", "siren"])
def test_batched_init_draws_from_the_same_bounds_as_the_module(init: str) -> None:
    spec = ArchSpec.siren(hidden_dim=16)
    rows = sample_init_params(spec, 2000, torch.Generator().manual_seed(0), init)
    first = 1 / 2 if init == "siren" else (6 / 2) ** 0.5 / 30
    hidden = (6 / 16) ** 0.5 / 30
    for (a, b), bound in [((0, 32), first), ((48, 304), hidden)]:  # first / hidden weights
        assert 0.99 * bound < rows[:, a:b].abs().max() <= bound
    assert rows[:, 32:48].abs().max() == 0  # sine-layer biases start at zero


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
