"""Weight-space models: invariance and equivariance under random relabelings, the flat baseline's
lack of it, DWS = the dense equivariant layer, gradients, and architecture checks."""

from __future__ import annotations

import itertools

import pytest
import torch

from nngraph.graph import ArchSpec, random_relabel, relabel_indices, to_graph_batch
from nngraph.graph.convert import Graph
from nngraph.models import MODELS, DWSLayer, build_model
from nngraph.models.base import Embeddings
from tests.helpers import SPECS, random_params, spec_id

EQUIVARIANT = ["relational_transformer", "relational_transformer_sparse", "dws", "pna"]
SMALL = {  # small settings keep the suite fast; the structure is the same as the defaults
    "relational_transformer": {"n_layers": 2, "d_node": 16, "d_edge": 8, "d_attn": 16},
    "relational_transformer_sparse": {
        "n_layers": 2,
        "d_node": 16,
        "d_edge": 8,
        "d_attn": 16,
        "mode": "sparse",
    },
    "dws": {"n_layers": 2, "hidden": 8, "out_dim": 8},
    "pna": {"n_layers": 2, "hidden": 16},
    "mlp": {"hidden": 32, "out_dim": 8},
}


def make(name: str, spec: ArchSpec, seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    base = name.removesuffix("_sparse")
    return build_model(base, spec, **{**SMALL[name], **kw}).eval()


def batch_of(spec: ArchSpec, b: int = 4, seed: int = 0) -> Graph:
    return to_graph_batch(random_params(spec, b, seed=seed) * 3, spec)


@pytest.mark.parametrize("name", EQUIVARIANT)
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_graph_embedding_is_invariant_and_node_states_permute(name, spec):
    model = make(name, spec)
    g = batch_of(spec)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        out = model(g)
        for _ in range(3):
            g2, perms = random_relabel(g, gen, return_perms=True)
            out2 = model(g2)
            torch.testing.assert_close(out2.graph, out.graph, rtol=1e-4, atol=1e-5)
            node_idx, edge_idx = relabel_indices(spec, perms, 4)
            torch.testing.assert_close(out2.node, out.node[node_idx.long()], rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(out2.edge, out.edge[edge_idx.long()], rtol=1e-4, atol=1e-5)


def test_relabeling_changes_the_input_so_invariance_is_not_trivial():
    spec = SPECS[0]
    g = batch_of(spec)
    g2 = random_relabel(g, torch.Generator().manual_seed(1))
    assert not torch.allclose(g.edge_attr, g2.edge_attr)


def test_flat_mlp_is_not_invariant():
    spec = SPECS[0]
    model = make("mlp", spec)
    g = batch_of(spec)
    with torch.no_grad():
        out, out2 = model(g).graph, model(random_relabel(g)).graph
    assert (out - out2).abs().max() > 1e-3 * out.abs().max()


@pytest.mark.parametrize("name", [*EQUIVARIANT, "mlp"])
def test_gradients_reach_every_parameter(name):
    spec = SPECS[0]
    model = make(name, spec).train()
    out: Embeddings = model(batch_of(spec))
    gen = torch.Generator().manual_seed(0)
    loss = sum(
        (t * torch.randn(t.shape, generator=gen)).sum()
        for t in (out.graph, out.node, out.edge)
        if t is not None
    )
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient reaches {pname}"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient at {pname}"


def test_sparse_attention_equals_dense_attention_restricted_to_the_weights():
    spec = SPECS[0]
    torch.manual_seed(0)
    model = build_model("relational_transformer", spec, **SMALL["relational_transformer"]).eval()
    sparse = build_model("relational_transformer", spec, **SMALL["relational_transformer_sparse"])
    sparse.load_state_dict(model.state_dict())
    g = batch_of(spec)
    v = model.view(g)
    n = v.t.num_nodes
    src, dst = v.t.edge_index
    adj = torch.eye(n, dtype=torch.bool)
    adj[src, dst] = adj[dst, src] = True
    with torch.no_grad():
        from nngraph.models.encoders import position_ids

        h0 = model.node_encoder(v.x) + model.positions(position_ids(spec))
        h_dense, e_dense = model._dense(h0, v.e, src, dst, mask=adj.expand(v.b, n, n))
        out_sparse = sparse.eval()(g)
        out_dense = model(g)
    torch.testing.assert_close(out_sparse.node, h_dense.reshape(v.b * n, -1), rtol=1e-4, atol=1e-5)
    edge_dense = e_dense[:, src, dst].reshape(-1, e_dense.shape[-1])
    torch.testing.assert_close(out_sparse.edge, edge_dense, rtol=1e-4, atol=1e-5)
    # and attending over all pairs (the reference's dense semantics) is a different function
    assert not torch.allclose(out_dense.graph, out_sparse.graph, atol=1e-3)


@pytest.mark.parametrize("name", [*EQUIVARIANT, "mlp"])
def test_other_architectures_are_handled_or_rejected_clearly(name):
    model = make(name, SPECS[0])  # 2-32-32-1 SIREN
    wider = ArchSpec.siren(hidden_dim=48)
    if name == "mlp":
        with pytest.raises(ValueError, match="exactly this architecture"):
            model(batch_of(wider))
    else:  # hidden widths may differ: the models see hidden neurons only as sets
        with torch.no_grad():
            assert model(batch_of(wider)).graph.shape == (4, model.out_dim)
    deeper = ArchSpec.siren(n_layers=4)
    with pytest.raises(ValueError, match=r"built for .*\(4 weight layers vs 3\)"):
        model(batch_of(deeper))
    relu = ArchSpec.mlp((2, 32, 32, 1))
    with pytest.raises(ValueError, match="activation"):
        model(batch_of(relu))


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(
        ValueError, match="available: dws, mlp, pna, relational_transformer, statnn"
    ):
        build_model("nope", SPECS[0])
    assert set(MODELS) == {"dws", "mlp", "pna", "relational_transformer", "statnn"}


# ---- DWS: the message-passing layer is the full equivariant linear layer -------------------------


def _param_indices(spec: ArchSpec) -> list[tuple[str, int, dict[int, int]]]:
    """Every flat parameter as (kind, weight layer, {neuron layer: index})."""
    out = []
    for name, shape in spec.param_shapes:
        layer = int(name.split(".")[1])
        if name.endswith("weight"):
            for i, j in itertools.product(range(shape[0]), range(shape[1])):
                out.append(("w", layer, {layer + 1: i, layer: j}))
        else:
            out.extend(("b", layer, {layer + 1: i}) for i in range(shape[0]))
    return out


def orbit_ids(spec: ArchSpec) -> torch.Tensor:
    """``[P, P]`` orbit of each (output, input) parameter pair under permutations of hidden
    neurons. Straight from the definition of the DWS layer (Navon et al. 2023, Sec. 4): a linear map
    of weight space commutes with every such permutation iff its matrix is constant on these orbits,
    i.e. it is the dense layer ``out = sum_s theta_s * [orbit == s] @ in``. Input and output neurons
    are not permuted, so their index values belong to the orbit; for a hidden layer only whether the
    two indices are present and equal does."""
    params = _param_indices(spec)
    last = len(spec.layer_sizes) - 1
    keys: dict[tuple, int] = {}
    ids = torch.empty(len(params), len(params), dtype=torch.long)
    for a, (ka, la, ia) in enumerate(params):
        for b, (kb, lb, ib) in enumerate(params):
            rel = []
            for k in range(last + 1):
                if k in (0, last):
                    rel.append((ia.get(k), ib.get(k)))
                else:
                    both = k in ia and k in ib
                    rel.append((k in ia, k in ib, both and ia[k] == ib[k]))
            ids[a, b] = keys.setdefault((ka, la, kb, lb, *rel), len(keys))
    return ids


def layer_matrix(layer: DWSLayer, spec: ArchSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The DWS layer (1 channel) as ``out = J @ p + c`` on flat parameters."""
    t = spec.templates
    p = spec.num_params

    def apply(params: torch.Tensor) -> torch.Tensor:
        g = to_graph_batch(params, spec)
        b = params.shape[0]
        x, e = layer(g.x.view(b, t.num_nodes, 1), g.edge_attr.view(b, t.num_edges, 1), spec)
        out = params.new_zeros(b, p)
        out[:, t.edge_param_idx[:, 0]] = e[..., 0]
        has = t.node_param_idx[:, 0] >= 0
        out[:, t.node_param_idx[has, 0]] = x[:, has, 0]
        return out

    eye = torch.eye(p, dtype=torch.float64)
    c = apply(torch.zeros(1, p, dtype=torch.float64))[0]
    return (apply(eye) - c).T, c


def weight_params(layer: DWSLayer) -> list[torch.nn.Parameter]:
    return [p for n, p in layer.named_parameters() if n.endswith("weight")]


DWS_SPECS = [
    ArchSpec((2, 3, 4, 2), activation="sine"),  # two hidden layers, one inner block
    ArchSpec((2, 3, 3, 2, 1), activation="sine"),  # two inner blocks meeting at a layer
    ArchSpec((3, 4, 2), activation="relu"),  # one hidden layer: everything folds onto it
    ArchSpec((2, 3), activation="relu"),  # no hidden layer: nothing is permuted
]


@pytest.mark.parametrize("spec", DWS_SPECS, ids=spec_id)
def test_dws_layer_is_the_dense_equivariant_layer(spec):
    sizes = spec.layer_sizes
    layer = DWSLayer(sizes[0], sizes[-1], spec.n_layers, 1, 1).double()
    ids = orbit_ids(spec)
    n_orbits = int(ids.max()) + 1
    weights = weight_params(layer)
    counts = torch.bincount(ids.view(-1)).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.zero_()
        # the map from the layer's weights to the orbit values of its matrix is linear: build it
        # one unit weight at a time, checking the matrix is constant on every orbit
        columns = []
        for w in weights:
            for k in range(w.numel()):
                w.view(-1)[k] = 1.0
                jac, _ = layer_matrix(layer, spec)
                w.view(-1)[k] = 0.0
                sums = torch.zeros(n_orbits, dtype=torch.float64)
                theta = sums.index_add_(0, ids.view(-1), jac.reshape(-1)) / counts
                assert torch.allclose(jac, theta[ids], atol=1e-12), "not constant on orbits"
                columns.append(theta)
        basis = torch.stack(columns, dim=1)  # [orbits, layer weights]
        # full: every dense equivariant layer is one of ours
        assert torch.linalg.matrix_rank(basis) == n_orbits
        # and numerically the same map: a random dense reference layer, realised by message passing
        gen = torch.Generator().manual_seed(0)
        theta = torch.randn(n_orbits, generator=gen, dtype=torch.float64)
        solution = torch.linalg.pinv(basis) @ theta
        torch.nn.utils.vector_to_parameters(solution, weights)
        dense = theta[ids]
        inputs = torch.randn(5, spec.num_params, generator=gen, dtype=torch.float64)
        jac, c = layer_matrix(layer, spec)
        ours = inputs @ jac.T + c
    torch.testing.assert_close(ours, inputs @ dense.T, rtol=1e-4, atol=1e-8)


def test_every_model_config_builds_its_model():

    from omegaconf import OmegaConf

    import nngraph

    folder = nngraph.config_dir() / "model"
    names = sorted(p.stem for p in folder.glob("*.yaml"))
    assert names == sorted(MODELS)
    for name in names:
        cfg = OmegaConf.load(folder / f"{name}.yaml")
        assert cfg.name == name
        model = build_model(cfg.name, SPECS[0], **cfg.kwargs)
        assert model.out_dim > 0 and cfg.optim.lr > 0


def test_dws_block_norm_keeps_invariance_in_training_mode():
    """Batch statistics over whole weight matrices / bias vectors do not see a relabeling."""
    spec = ArchSpec.siren(hidden_dim=6)
    model = make("dws", spec).train()
    assert len(model.norms) == len(model.layers) - 1 > 0
    g = batch_of(spec, b=6)
    out = model(g).graph
    again = model(random_relabel(g, torch.Generator().manual_seed(3))).graph
    torch.testing.assert_close(again, out, rtol=1e-4, atol=1e-5)
    plain = make("dws", spec, norm=False)
    assert len(plain.norms) == 0


def test_dws_max_reduction_is_invariant_and_differs_from_the_mean():
    """``reduction="max"`` (the official DWSNets pooling) keeps invariance under relabeling
    and is not the mean under another name; an unknown reduction is refused by name."""
    spec = ArchSpec.siren(hidden_dim=6)
    g = batch_of(spec, b=5)
    pooled = make("dws", spec, reduction="max").train()
    out = pooled(g).graph
    again = pooled(random_relabel(g, torch.Generator().manual_seed(4))).graph
    torch.testing.assert_close(again, out, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(make("dws", spec).train()(g).graph, out, atol=1e-3)
    with pytest.raises(ValueError, match="reduction must be one of.*'median'"):
        make("dws", spec, reduction="median")


@pytest.mark.parametrize("spec", DWS_SPECS, ids=spec_id)
def test_dws_folded_stack_computes_the_layer_by_layer_one(spec):
    """DWSNet folds a graph into its objects once and stays folded through every layer and
    batch norm: the same function as unfolding between layers (training-mode statistics)."""
    from nngraph.models.dws import _fold, _layout

    model = make("dws", spec, n_layers=3).train()
    with torch.no_grad():  # a distinct affine map per batch norm: a mixed-up one shows
        for p in model.norms.parameters():
            p.uniform_(-2, 2)
    g = batch_of(spec, b=5)
    out = model(g)
    v = model.view(g)
    x, e = v.x, v.e
    for i, layer in enumerate(model.layers):
        x, e = layer(x, e, spec)
        if i < len(model.layers) - 1:
            x, e = model.norms[i](x, e, spec)
            x, e = x.relu(), e.relu()
    nodes, edges, graph = _fold(x, e, _layout(spec, "cpu"))
    means = [t.mean(1) for t in nodes.values()] + [t.mean(1) for t in edges.values()]
    readout = model.readout(torch.cat([*means, graph], dim=-1))
    torch.testing.assert_close(out.node, x.reshape(-1, x.shape[-1]))
    torch.testing.assert_close(out.edge, e.reshape(-1, e.shape[-1]))
    torch.testing.assert_close(out.graph, readout)


@pytest.mark.parametrize("shape", [(37, 8), (3, 5, 8)])
@pytest.mark.parametrize("bias", [True, False])
def test_tall_linear_has_nn_linears_value_and_gradients(shape: tuple, bias: bool) -> None:
    from nngraph.models.tall_linear import TallLinear

    torch.manual_seed(0)
    tall, ref = TallLinear(8, 12, bias=bias).double(), torch.nn.Linear(8, 12, bias=bias).double()
    ref.load_state_dict(tall.state_dict())
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    g = torch.randn(*shape[:-1], 12, dtype=torch.float64)
    tall(x).backward(g)
    ref(x_ref).backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad)
    for p, q in zip(tall.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad)
    assert torch.autograd.gradcheck(tall, (x.detach().requires_grad_(),))


def test_compiled_layer_stack_computes_what_the_eager_one_does_and_its_gradients():
    """``trainer.compile``: the sparse relational transformer's compiled stack (training steps)
    gives the eager outputs and parameter gradients; models without one say so (False)."""
    spec = SPECS[0]
    eager, compiled = (
        make("relational_transformer_sparse", spec),
        make("relational_transformer_sparse", spec),
    )
    assert compiled.compile_layers() is True
    assert make("dws", spec).compile_layers() is False
    assert make("relational_transformer", spec).compile_layers() is False  # dense mode
    g = batch_of(spec, b=6)
    outs = []
    for model in (eager, compiled):
        out = model(g)  # grad enabled: the compiled stack runs for ``compiled``
        out.graph.square().sum().backward()
        outs.append((out.graph.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-4, atol=1e-5)
    for a, b in zip(outs[1][1], outs[0][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)
    assert compiled._compiled is not None and outs[0][0].abs().sum() > 0
