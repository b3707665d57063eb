"""Network <-> neural graph conversion: exact round trips, batch = from_data_list, clear errors."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch_geometric.data import Batch

from nngraph.graph import (
    ArchSpec,
    from_module,
    from_params,
    from_state_dict,
    graph_spec,
    to_graph_batch,
    to_module,
    to_params,
    to_state_dict,
)
from nngraph.inr import MLP, Siren, coordinate_grid
from tests.helpers import random_network, random_params


def test_round_trip_is_bitwise_exact(spec: ArchSpec) -> None:
    net = random_network(spec)
    g = from_module(net)
    assert graph_spec(g) == spec
    sd = to_state_dict(g)
    original = net.state_dict()
    assert list(sd) == list(original)
    for key, value in original.items():
        assert torch.equal(sd[key], value), key  # bitwise, not approximately
    back = to_module(g)
    for key, value in back.state_dict().items():
        assert torch.equal(value, original[key]), key
    x = torch.randn(33, spec.in_dim)
    assert torch.equal(back(x), net(x))
    assert type(back) is (Siren if spec.is_siren else MLP)


def test_flat_params_are_parameters_to_vector(spec: ArchSpec) -> None:
    net = random_network(spec, seed=3)
    g = from_module(net)
    assert torch.equal(to_params(g), nn.utils.parameters_to_vector(net.parameters()).detach())
    assert torch.equal(to_params(from_params(to_params(g), spec)), to_params(g))


def test_graph_layout_matches_architecture(spec: ArchSpec) -> None:
    net = random_network(spec, seed=1)
    g = from_module(net)
    sizes = spec.layer_sizes
    assert g.num_nodes == sum(sizes)
    assert g.num_edges == sum(a * b for a, b in itertools.pairwise(sizes))
    assert g.x.shape == (g.num_nodes, 1) and g.edge_attr.shape == (g.num_edges, 1)
    assert torch.all(g.x[: sizes[0]] == 0)  # input neurons have no bias
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    for layer, lin in enumerate(net.seq):
        # bias of neuron i of layer l + 1 is node feature of that node
        torch.testing.assert_close(
            g.x[starts[layer + 1] : starts[layer + 1] + sizes[layer + 1], 0],
            lin.bias.detach(),
            rtol=0,
            atol=0,
        )
        # edge j -> i between layer l and l + 1 carries W[i, j]
        src, dst = g.edge_index
        mask = g.edge_layer == layer
        rows = dst[mask] - starts[layer + 1]
        cols = src[mask] - starts[layer]
        assert torch.equal(g.edge_attr[mask, 0], lin.weight.detach()[rows, cols])
        assert torch.equal(g.layer[src[mask]], torch.full_like(rows, layer))


def test_gathered_batch_equals_from_data_list(spec: ArchSpec) -> None:
    params = random_params(spec, batch=5, seed=2)
    y = torch.tensor([3, 1, 4, 1, 5])
    fast = to_graph_batch(params, spec, y=y)
    slow = Batch.from_data_list(
        [_with_y(from_params(p, spec), y[i : i + 1]) for i, p in enumerate(params)]
    )
    assert set(fast.keys()) == set(slow.keys())
    for key in slow.keys():
        a, b = fast[key], slow[key]
        if isinstance(b, torch.Tensor):
            assert a.dtype == b.dtype and torch.equal(a, b), key
        else:
            assert a == b, key
    assert fast.num_graphs == slow.num_graphs == 5
    assert set(fast._slice_dict) == set(slow._slice_dict)
    for key, value in slow._slice_dict.items():
        assert torch.equal(fast._slice_dict[key], value), key
    for key, value in slow._inc_dict.items():
        assert (value is None and fast._inc_dict[key] is None) or torch.equal(
            fast._inc_dict[key], value
        ), key
    # PyG's own unbatching works on the gathered batch
    for i, data in enumerate(fast.to_data_list()):
        assert torch.equal(to_params(data), params[i])
    assert torch.equal(to_params(fast), params)
    assert torch.equal(fast[2].edge_index, slow[2].edge_index)


def test_soft_labels_and_float64_survive_batching() -> None:
    spec = ArchSpec.siren(hidden_dim=4)
    params = random_params(spec, 3).double()
    y = torch.softmax(torch.randn(3, 10), dim=1)
    batch = to_graph_batch(params, spec, y=y)
    assert batch.x.dtype == torch.float64 and torch.equal(batch.y, y)
    assert torch.equal(to_params(batch), params)
    assert torch.equal(batch.get_example(1).y, y[1:2])


def test_dwsnets_layout_file_converts(tmp_path: Path) -> None:
    """A state dict saved the way DWSNets saves its MNIST INRs loads, converts and evaluates."""

    class DWSSine(nn.Module):  # DWSNets' SIREN layer: parameters directly on the layer
        def __init__(self, dim_in: int, dim_out: int) -> None:
            super().__init__()
            bound = math.sqrt(6 / dim_in) / 30
            self.weight = nn.Parameter(torch.empty(dim_out, dim_in).uniform_(-bound, bound))
            self.bias = nn.Parameter(torch.randn(dim_out) * 0.1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sin(30.0 * nn.functional.linear(x, self.weight, self.bias))

    class DWSINR(nn.Module):  # in_dim=2, n_layers=3, up_scale=16 -> 2-32-32-1, output + 0.5
        def __init__(self) -> None:
            super().__init__()
            self.seq = nn.Sequential(DWSSine(2, 32), DWSSine(32, 32), nn.Linear(32, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.seq(x) + 0.5

    torch.manual_seed(0)
    reference = DWSINR()
    path = tmp_path / "inr_0.pth"
    torch.save(reference.state_dict(), path)
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    g = from_state_dict(loaded)  # no spec: inferred as the DWSNets SIREN
    assert graph_spec(g) == ArchSpec.siren()
    coords = coordinate_grid(28, 28)
    torch.testing.assert_close(to_module(g)(coords), reference(coords), rtol=0, atol=1e-6)
    assert Siren().load_state_dict(loaded)  # loads into nngraph's module as it is


def test_sequential_mlps_convert() -> None:
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    g = from_module(seq)
    assert graph_spec(g) == ArchSpec.mlp((3, 8, 8, 2), activation="tanh")
    x = torch.randn(10, 3)
    assert torch.equal(to_module(g)(x), seq(x))
    # nn.Sequential keys ("0.weight", "2.weight") are a layout from_state_dict understands too
    assert torch.equal(to_params(from_state_dict(seq.state_dict(), graph_spec(g))), to_params(g))


def test_unsorted_numbered_keys_are_ordered_by_layer() -> None:
    spec = ArchSpec.mlp((2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 1))  # 11 layers: "seq.10" sorts early
    net = random_network(spec)
    shuffled = dict(sorted(net.state_dict().items()))
    keys = list(shuffled)
    assert keys.index("seq.10.weight") < keys.index("seq.2.weight")  # lexicographic, not by layer
    assert torch.equal(to_params(from_state_dict(shuffled, spec)), to_params(from_module(net)))


# ---- errors -------------------------------------------------------------------------------------


def _sd() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in random_network(ArchSpec.siren()).state_dict().items()}


def test_wrong_shape_names_the_key() -> None:
    sd = _sd()
    sd["seq.1.weight"] = torch.zeros(32, 16)
    with pytest.raises(
        ValueError, match=r"seq\.1\.weight has shape \(32, 16\).*inputs do not match"
    ):
        from_state_dict(sd)
    with pytest.raises(
        ValueError, match=r"seq\.1\.weight has shape \(32, 16\).*expects \(32, 32\)"
    ):
        from_state_dict(sd, ArchSpec.siren())


@pytest.mark.parametrize("key", ["seq.1.bias", "seq.2.weight", "seq.0.weight"])
def test_missing_key_is_named(key: str) -> None:
    sd = _sd()
    del sd[key]
    with pytest.raises(ValueError, match=f"missing key {key.replace('.', '[.]')}"):
        from_state_dict(sd, ArchSpec.siren())


def test_missing_layer_is_named() -> None:
    sd = _sd()
    del sd["seq.2.weight"], sd["seq.2.bias"]
    with pytest.raises(ValueError, match=r"has 2 layers.*missing key seq\.2\.weight"):
        from_state_dict(sd, ArchSpec.siren())


def test_extra_layer_and_stray_keys_are_named() -> None:
    sd = _sd()
    sd["seq.3.weight"], sd["seq.3.bias"] = torch.zeros(1, 1), torch.zeros(1)
    with pytest.raises(ValueError, match=r"unexpected key seq\.3\.weight"):
        from_state_dict(sd, ArchSpec.siren())
    sd = _sd()
    sd["pe.B"] = torch.zeros(2, 2)
    with pytest.raises(ValueError, match=r"unexpected key 'pe\.B'"):
        from_state_dict(sd)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_rejected_with_their_key(bad: float) -> None:
    sd = _sd()
    sd["seq.1.weight"][3, 4] = bad
    with pytest.raises(ValueError, match=r"seq\.1\.weight holds non-finite values"):
        from_state_dict(sd)
    g = from_state_dict(sd, validate=False)  # validation can be switched off
    assert not torch.isfinite(g.edge_attr).all()
    params = random_params(ArchSpec.siren(), 4)
    params[2, 1160] = bad  # 1152..1183 is seq.2.weight
    with pytest.raises(ValueError, match=r"sample 2: seq\.2\.weight holds non-finite"):
        to_graph_batch(params, ArchSpec.siren(), validate=True)
    with pytest.raises(ValueError, match=r"seq\.2\.weight holds non-finite"):
        from_params(params[2], ArchSpec.siren())


@pytest.mark.parametrize(
    ("module", "match"),
    [
        (
            nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Conv1d(4, 4, 3)),
            r"layer 2 \(Conv1d\) is not supported",
        ),
        (
            nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)),
            r"layer 1 \(BatchNorm1d\)",
        ),
        (
            nn.Sequential(nn.Linear(2, 4, bias=False), nn.ReLU(), nn.Linear(4, 1)),
            r"layer 0 \(Linear\) has no bias",
        ),
        (
            nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(5, 1)),
            r"layer 2 \(Linear\) takes 5 inputs",
        ),
        (
            nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1)),
            "mixed activations",
        ),
        (
            nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1), nn.Sigmoid()),
            "ends with an activation",
        ),
        (nn.Conv2d(1, 1, 3), "cannot read the architecture of a Conv2d"),
    ],
)
def test_unsupported_modules_are_named(module: nn.Module, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        from_module(module)


def test_wrong_param_count_and_batches_are_explained() -> None:
    spec = ArchSpec.siren()
    with pytest.raises(ValueError, match=r"\[B, 1185\].*got \(4, 1184\)"):
        to_graph_batch(torch.zeros(4, 1184), spec)
    batch = to_graph_batch(random_params(spec, 2), spec)
    with pytest.raises(ValueError, match="batch of 2"):
        to_state_dict(batch)
    mixed = Batch.from_data_list(
        [
            from_params(random_params(spec, 1)[0], spec),
            from_params(
                torch.zeros(ArchSpec.siren(hidden_dim=4).num_params), ArchSpec.siren(hidden_dim=4)
            ),
        ]
    )
    with pytest.raises(ValueError, match="mixes architectures"):
        graph_spec(mixed)


def _with_y(data, y):
    data.y = y
    return data


def test_batch_features_are_fresh_tensors() -> None:
    spec = ArchSpec.siren(hidden_dim=4)
    params = random_params(spec, 3)
    before = params.clone()
    first = to_graph_batch(params, spec)
    first.x.add_(1.0)
    first.edge_attr.mul_(2.0)
    assert torch.equal(params, before)  # the parameters are not aliased
    second = to_graph_batch(params, spec)
    assert torch.equal(to_params(second), before)  # nor is anything cached between batches


def test_shared_batch_structure_survives_in_place_edits() -> None:
    spec = ArchSpec.siren(hidden_dim=5)
    params = random_params(spec, 3)
    first = to_graph_batch(params, spec)
    reference = {
        k: first[k].clone() for k in ("edge_index", "layer", "role", "edge_layer", "batch")
    }
    for key in reference:
        first[key].add_(1)  # vandalise every shared structure tensor in place
    second = to_graph_batch(params, spec)
    for key, value in reference.items():
        assert torch.equal(second[key], value), key


def test_non_contiguous_and_empty_params() -> None:
    spec = ArchSpec.mlp((5, 2))  # a single run of parameters per feature kind
    columns = torch.randn(spec.num_params, 4).T  # column-major [4, P]
    assert torch.equal(to_params(to_graph_batch(columns, spec)), columns)
    spec = ArchSpec.siren(hidden_dim=4)
    strided = random_params(spec, 6)[::2]
    assert torch.equal(to_params(to_graph_batch(strided, spec)), strided)
    with pytest.raises(ValueError, match="no rows"):
        to_graph_batch(torch.zeros(0, spec.num_params), spec)
    with pytest.raises(ValueError, match="y must be a tensor with 6 rows"):
        to_graph_batch(random_params(spec, 6), spec, y=torch.tensor(3))


def test_pyg_loader_and_slicing_work_on_neural_graphs() -> None:
    from torch_geometric.loader import DataLoader

    spec = ArchSpec.siren(hidden_dim=4)
    params = random_params(spec, 10)
    graphs = [from_params(p, spec) for p in params]
    loaded = list(DataLoader(graphs, batch_size=4, shuffle=False))
    assert [b.num_graphs for b in loaded] == [4, 4, 2]
    assert torch.equal(torch.cat([to_params(b) for b in loaded]), params)
    batch = to_graph_batch(params, spec)
    # PyG's slicing returns lists of Data, which collate back into batches
    assert torch.equal(to_params(Batch.from_data_list(batch[2:5])), params[2:5])
    assert torch.equal(to_params(Batch.from_data_list(batch.index_select([7, 1]))), params[[7, 1]])


def test_activation_modules_with_parameters_are_refused_or_kept_exact() -> None:
    tanh_gelu = nn.Sequential(nn.Linear(2, 4), nn.GELU(approximate="tanh"), nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"layer 1 \(GELU approximate='tanh'\)"):
        from_module(tanh_gelu)
    steep = nn.Sequential(nn.Linear(2, 4), nn.LeakyReLU(0.2), nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"layer 1 \(LeakyReLU negative_slope=0.2\)"):
        from_module(steep)
    leaky = nn.Sequential(nn.Linear(2, 4), nn.LeakyReLU(), nn.Linear(4, 1))
    x = torch.randn(8, 2)
    assert torch.equal(to_module(from_module(leaky))(x), leaky(x))


def test_keys_of_different_names_keep_their_order() -> None:
    class EncDec(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc1 = nn.Linear(4, 4)
            self.dec1 = nn.Linear(4, 4)

    net = EncDec()
    g = from_state_dict(net.state_dict(), ArchSpec.mlp((4, 4, 4)))
    sd = to_state_dict(g)
    assert torch.equal(sd["seq.0.weight"], net.enc1.weight.detach())  # enc1 stays first
    assert torch.equal(sd["seq.1.weight"], net.dec1.weight.detach())


def test_odd_state_dicts_are_explained() -> None:
    with pytest.raises(ValueError, match="the state dict is empty"):
        from_state_dict({})
    sd = _sd()
    sd["seq.0.bias"] = sd["seq.0.bias"].long()
    with pytest.raises(ValueError, match=r"seq\.0\.bias must be a floating-point tensor"):
        from_state_dict(sd)
    with pytest.raises(ValueError, match="must be a tensor"):
        from_state_dict({"seq.0.weight": [[1.0]], "seq.0.bias": [0.0]})
    with pytest.raises(ValueError, match=r"params must be a tensor of shape \[P\]"):
        from_params([0.0] * 9, ArchSpec.mlp((2, 3)))
