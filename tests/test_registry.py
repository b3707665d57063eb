"""A new architecture family plugs in through the registry alone, vector edge features included.

The family here (1-D convolutions, kernel 3, written only in this test) makes each kernel the
feature vector of one edge, as a CNN family will; the graph code itself is untouched.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from nngraph.graph import (
    ROLE_HIDDEN,
    ROLE_INPUT,
    ROLE_OUTPUT,
    ArchSpec,
    GraphTemplates,
    from_module,
    from_params,
    graph_spec,
    random_relabel,
    register_family,
    to_graph_batch,
    to_module,
    to_params,
)
from nngraph.graph import spec as spec_module
from nngraph.graph.spec import index_runs

K = 3


class Conv1dFamily:
    name = "conv1d_k3"

    def param_shapes(self, spec: ArchSpec) -> list[tuple[str, tuple[int, ...]]]:
        out = []
        for i, (c_in, c_out) in enumerate(zip(spec.layer_sizes[:-1], spec.layer_sizes[1:])):
            out += [(f"{2 * i}.weight", (c_out, c_in, K)), (f"{2 * i}.bias", (c_out,))]
        return out

    def templates(self, spec: ArchSpec) -> GraphTemplates:
        sizes = spec.layer_sizes
        starts = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        n = starts[-1]
        layer = torch.cat([torch.full((s,), i) for i, s in enumerate(sizes)])
        role = torch.full((n,), ROLE_HIDDEN)
        role[layer == 0], role[layer == len(sizes) - 1] = ROLE_INPUT, ROLE_OUTPUT
        node_idx = torch.full((n, 1), -1)
        src, dst, eidx, elayer, block, fan = [], [], [], [], [], []
        off = e_off = 0
        for i, (c_in, c_out) in enumerate(itertools.pairwise(sizes)):
            o, j = torch.arange(c_out).repeat_interleave(c_in), torch.arange(c_in).repeat(c_out)
            src.append(starts[i] + j)
            dst.append(starts[i + 1] + o)
            eidx.append(off + (o * c_in + j).unsqueeze(1) * K + torch.arange(K))
            elayer.append(torch.full((c_out * c_in,), i))
            block.append(torch.full((c_out * c_in,), e_off))
            fan.append(torch.full((c_out * c_in,), c_in))
            off, e_off = off + c_out * c_in * K, e_off + c_out * c_in
            node_idx[starts[i + 1] : starts[i + 2], 0] = off + torch.arange(c_out)
            off += c_out
        has = node_idx >= 0
        edge_param_idx = torch.cat(eidx)
        return GraphTemplates(
            num_nodes=n, num_edges=e_off, num_params=off, layer_start=tuple(starts),
            edge_index=torch.stack([torch.cat(src), torch.cat(dst)]), node_param_idx=node_idx,
            edge_param_idx=edge_param_idx, layer=layer, role=role, edge_layer=torch.cat(elayer),
            node_local=torch.cat([torch.arange(s) for s in sizes]),
            edge_block_start=torch.cat(block), edge_fan_in=torch.cat(fan), node_has_param=has,
            node_param_flat=node_idx[has], node_param_pos=has.view(-1).nonzero().view(-1),
            node_runs=index_runs(node_idx),
            edge_runs=index_runs(edge_param_idx),
        )  # fmt: skip

    def spec_from_state_dict(self, state_dict: dict[str, Tensor]) -> ArchSpec:
        raise ValueError("this family needs a spec")

    def state_dict_to_params(self, state_dict: dict[str, Tensor], spec: ArchSpec) -> Tensor:
        return torch.cat([state_dict[k].reshape(-1) for k, _ in self.param_shapes(spec)])

    def spec_from_module(self, module: nn.Module) -> ArchSpec | None:
        convs = [m for m in module.children() if isinstance(m, nn.Conv1d)]
        if not isinstance(module, nn.Sequential) or len(convs) * 2 - 1 != len(module):
            return None
        sizes = (convs[0].in_channels, *[c.out_channels for c in convs])
        return ArchSpec(sizes, activation="relu", family=self.name)

    def build_module(self, spec: ArchSpec) -> nn.Module:
        layers: list[nn.Module] = []
        for c_in, c_out in zip(spec.layer_sizes[:-1], spec.layer_sizes[1:]):
            layers += [nn.Conv1d(c_in, c_out, K, padding=1), nn.ReLU()]
        return nn.Sequential(*layers[:-1])


@pytest.fixture
def conv_family() -> Iterator[Conv1dFamily]:
    family = register_family(Conv1dFamily())
    yield family
    spec_module._FAMILIES.pop(family.name)


def test_conv_family_round_trip_batch_and_relabel(conv_family: Conv1dFamily) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(2, 6, K, padding=1), nn.ReLU(), nn.Conv1d(6, 4, K, padding=1))
    g = from_module(net)
    spec = graph_spec(g)
    assert spec.family == "conv1d_k3" and spec.layer_sizes == (2, 6, 4)
    assert g.edge_attr.shape == (2 * 6 + 6 * 4, K)  # one kernel per edge
    assert torch.equal(g.edge_attr[0], net[0].weight[0, 0].detach())
    assert torch.equal(to_params(g), nn.utils.parameters_to_vector(net.parameters()).detach())
    x = torch.randn(5, 2, 9)
    assert torch.equal(to_module(g)(x), net(x))

    params = torch.randn(4, spec.num_params)
    fast = to_graph_batch(params, spec)
    slow = Batch.from_data_list([from_params(p, spec) for p in params])
    for key in ("x", "edge_index", "edge_attr", "layer", "role", "edge_layer", "batch", "ptr"):
        assert torch.equal(fast[key], slow[key]), key

    h = random_relabel(g, torch.Generator().manual_seed(0))
    assert not torch.equal(to_params(h), to_params(g))
    torch.testing.assert_close(to_module(h)(x), net(x), rtol=0, atol=1e-6)


class SourceMajorConv1dFamily(Conv1dFamily):
    """The same family with edges stored source-major, which relabeling cannot address."""

    name = "conv1d_k3_source_major"

    def templates(self, spec: ArchSpec) -> GraphTemplates:
        t = super().templates(spec)
        src, dst = t.edge_index
        order = torch.argsort(src * 10_000 + dst)  # sort edges by source neuron first
        return GraphTemplates(
            **{
                **t.__dict__,
                "edge_index": t.edge_index[:, order],
                "edge_param_idx": t.edge_param_idx[order],
                "edge_runs": index_runs(t.edge_param_idx[order]),
            }
        )


def test_a_family_with_unusable_edge_order_is_refused() -> None:
    family = register_family(SourceMajorConv1dFamily())
    try:
        with pytest.raises(ValueError, match="orders its edges in a way relabeling cannot use"):
            _ = ArchSpec((2, 3, 2), activation="relu", family=family.name).templates
    finally:
        spec_module._FAMILIES.pop(family.name)
