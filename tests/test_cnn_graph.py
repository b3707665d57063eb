"""CNNs as neural graphs: spec round trips, module <-> graph bit for bit, channel relabelings that
keep the function, the gathered batch equal to PyG's, and a clear error for every CNN we cannot
represent."""

from __future__ import annotations

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
    random_relabel,
    to_graph_batch,
    to_module,
    to_params,
    to_state_dict,
)


def small_cnn(act: type[nn.Module] = nn.ReLU, pool: type[nn.Module] = nn.AdaptiveAvgPool2d):
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        act(),
        nn.Conv2d(6, 8, 5, stride=2, padding=2),
        act(),
        pool(1),
        nn.Flatten(),
        nn.Linear(8, 7),
        act(),
        nn.Linear(7, 4),
    )


@pytest.mark.parametrize("act", [nn.ReLU, nn.Tanh, nn.GELU])
@pytest.mark.parametrize("pool", [nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d])
def test_module_graph_module_is_bit_for_bit(act: type, pool: type) -> None:
    torch.manual_seed(0)
    net = small_cnn(act, pool)
    g = from_module(net)
    spec = graph_spec(g)
    assert spec.family == "cnn" and spec.layer_sizes == (3, 6, 8, 7, 4)
    assert spec.kernel_sizes == (3, 5, 1, 1) and spec.strides == (1, 2, 1, 1)
    assert g.x.shape == (3 + 6 + 8 + 7 + 4, 1)
    assert g.edge_attr.shape == (3 * 6 + 6 * 8 + 8 * 7 + 7 * 4, 25)  # the largest kernel, 5x5
    # a 3x3 kernel sits in the centre of the 5x5 slot; a dense weight in the very centre
    assert torch.equal(g.edge_attr[0].view(5, 5)[1:4, 1:4], net[0].weight[0, 0].detach())
    assert torch.equal(g.edge_attr[-1].view(5, 5)[2, 2], net[8].weight[3, 6].detach())
    assert int((g.edge_attr[-1] != 0).sum()) <= 1
    assert torch.equal(to_params(g), nn.utils.parameters_to_vector(net.parameters()).detach())
    back = to_module(g)
    images = torch.randn(6, 3, 9, 9)
    assert torch.equal(back(images), net(images))
    sd = to_state_dict(g)
    assert sd.keys() == net.state_dict().keys()
    assert all(torch.equal(sd[k], v) for k, v in net.state_dict().items())
    assert torch.equal(to_params(from_state_dict(net.state_dict(), spec)), to_params(g))


def test_spec_serialises_and_mlp_specs_keep_their_dict() -> None:
    spec = ArchSpec.cnn((1, 8, 16), (10,), 3, activation="tanh", global_pool="max")
    assert ArchSpec.from_dict(spec.to_dict()) == spec
    assert "kernel_sizes" in spec.to_dict()
    siren = ArchSpec.siren()
    assert set(siren.to_dict()) == {"layer_sizes", "activation", "w0", "out_offset", "family"}
    assert ArchSpec.from_dict(siren.to_dict()) == siren


def test_random_channel_relabelings_keep_the_function() -> None:
    torch.manual_seed(1)
    net = small_cnn()
    g = from_module(net)
    images = torch.randn(4, 3, 10, 10)
    for seed in range(20):
        h = random_relabel(g, torch.Generator().manual_seed(seed))
        assert not torch.equal(to_params(h), to_params(g))
        torch.testing.assert_close(to_module(h)(images), net(images), rtol=1e-5, atol=1e-6)


def test_gathered_batch_equals_pyg_batch() -> None:
    spec = graph_spec(from_module(small_cnn()))
    params = torch.randn(5, spec.num_params)
    fast = to_graph_batch(params, spec)
    slow = Batch.from_data_list([from_params(p, spec) for p in params])
    for key in ("x", "edge_index", "edge_attr", "layer", "role", "edge_layer", "batch", "ptr"):
        assert torch.equal(fast[key], slow[key]), key
    assert torch.equal(to_params(fast), params)


def _seq(*layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(*layers)


BAD_MODULES = [
    (
        _seq(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Linear(4, 2)),
        r"layer 2 \(Linear\) needs a global pooling and Flatten",
    ),
    (
        _seq(nn.Conv2d(1, 4, 3, dilation=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
             nn.Linear(4, 2)),
        r"layer 0 \(Conv2d\) uses groups, dilation",
    ),
    (
        _seq(nn.Conv2d(1, 4, (3, 1)), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
             nn.Linear(4, 2)),
        r"square kernel",
    ),
    (
        _seq(nn.Conv2d(1, 4, 3, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
             nn.Linear(4, 2)),
        r"layer 0 \(Conv2d\) has no bias",
    ),
    (
        _seq(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
             nn.Linear(16, 2)),
        r"global pooling to 1x1",
    ),
    (
        _seq(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1),
             nn.Flatten(), nn.Linear(4, 2)),
        r"layer 2 \(MaxPool2d\) is not supported in a CNN",
    ),
    (
        _seq(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
             nn.Linear(5, 2)),
        r"takes 5 inputs but the layer before gives 4",
    ),
    (
        _seq(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        r"must end with a Linear",
    ),
    (  # relu(avg(x)) is not avg(relu(x)): moving the activation would change the function
        _seq(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.ReLU(), nn.Flatten(),
             nn.Linear(4, 2)),
        r"layer 1 \(AdaptiveAvgPool2d\) must be one global pooling to 1x1 after the "
        r"convolutions and their activation",
    ),
    (
        _seq(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Tanh(),
             nn.Linear(4, 2)),
        r"after the convolutions and their activation",
    ),
    (
        _seq(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
             nn.Linear(4, 2), nn.ReLU()),
        r"with no activation after it",
    ),
    (
        _seq(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(0),
             nn.Linear(4, 2)),
        r"layer 3 \(Flatten\) must be Flatten\(\)",
    ),
    (
        _seq(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Linear(4, 2)),
        r"^layer 0 \(Conv1d\) is not supported in a CNN: expected Conv2d",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("module", "message"), BAD_MODULES)
def test_unrepresentable_cnns_get_one_clear_error(module: nn.Module, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_module(module)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layer_kinds": ("linear", "conv2d")}, r"every convolution must come before"),
        ({"layer_kinds": ("conv2d",)}, r"one entry per weight layer \(2\)"),
        ({"layer_kinds": ("conv3d", "linear")}, r"unknown layer kind 'conv3d'"),
        ({"layer_kinds": ("conv2d", "linear"), "kernel_sizes": (3, 0)}, r"ints >= 1"),
        ({"layer_kinds": ("conv2d", "linear"), "kernel_sizes": (3, 3)}, r"dense layer 1 has"),
        (
            {"layer_kinds": ("conv2d", "linear"), "kernel_sizes": (3, 1), "global_pool": "sum"},
            r"unknown global_pool",
        ),
        ({"layer_kinds": ("conv2d", "linear")}, r"has convolutions but no kernel_sizes"),
        ({"activations": ("relu", "swish")}, r"one entry per layer but the last"),
    ],
)
def test_nonsense_cnn_specs_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ArchSpec((1, 4, 2), activation="relu", family="cnn", **kwargs)


def test_families_refuse_each_others_specs() -> None:
    cnn = ArchSpec.cnn((1, 4), (2,))
    with pytest.raises(ValueError, match="family 'mlp' is dense layers only"):
        _ = ArchSpec(cnn.layer_sizes, activation="relu", layer_kinds=cnn.layer_kinds,
                     kernel_sizes=cnn.kernel_sizes).templates  # fmt: skip
    with pytest.raises(ValueError, match="is not a CNN"):
        _ = ArchSpec((1, 4, 2), activation="relu", family="cnn").templates
    with pytest.raises(ValueError, match=r"a 2-D convolution: .* pass spec=ArchSpec.cnn"):
        from_state_dict(small_cnn().state_dict())
    with pytest.raises(ValueError, match=r"missing key '8.weight'"):
        from_state_dict(
            {k: v for k, v in small_cnn().state_dict().items() if k != "8.weight"},
            graph_spec(from_module(small_cnn())),
        )
