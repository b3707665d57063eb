"""Everything above the graph on CNN batches: function-preserving augmentations keep a decoded
CNN's outputs, the others run and leave kernel padding empty, INR-only ones refuse CNNs, weight
matching undoes a channel relabeling, and the graph models are invariant to one."""

from __future__ import annotations

import pytest
import torch

from nngraph.align.weight_matching import apply_perms, weight_matching
from nngraph.augment import build_augmentation
from nngraph.graph import (
    ArchSpec,
    graph_spec,
    random_relabel,
    to_graph_batch,
    to_module,
    to_params,
)
from nngraph.models import build_model
from nngraph.zoo.functional import cnn_init

RELU = ArchSpec.cnn((2, 4, 6), (5, 3), 3, stride=[1, 2])
TANH = ArchSpec.cnn((2, 4, 6), (5, 3), 3, stride=[1, 2], activation="tanh")
TANH_MAX = ArchSpec.cnn((2, 4, 6), (5, 3), 3, activation="tanh", global_pool="max")


def batch(spec: ArchSpec, b: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return to_graph_batch(cnn_init(spec, torch.ones(b), generator=gen), spec, idx=torch.arange(b))


def outputs(g, images: torch.Tensor) -> torch.Tensor:
    return torch.stack([to_module(g.get_example(i))(images) for i in range(g.num_graphs)])


@pytest.mark.parametrize(
    ("name", "spec"),
    [("permute", RELU), ("positive_scale", RELU), ("siren_neg", TANH), ("permute", TANH_MAX)],
)
def test_function_preserving_augmentations_keep_the_cnns_outputs(name: str, spec) -> None:
    g = batch(spec)
    images = torch.randn(5, 2, 9, 9)
    aug = build_augmentation(name, seed=0)(g)
    assert not torch.equal(to_params(aug), to_params(g))
    torch.testing.assert_close(outputs(aug, images), outputs(g, images), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "name", ["gaussian_noise", "dropout", "quantile_dropout", "mixup", "mixup_perm", "mixup_align"]
)
def test_generic_augmentations_run_on_cnns_and_keep_padding_empty(name: str) -> None:
    g = batch(RELU)
    aug = build_augmentation(name, seed=0, num_classes=3)(g)
    t = RELU.templates
    pad = (t.edge_param_idx < 0).repeat(g.num_graphs, 1)
    assert bool(pad.any()) and bool((aug.edge_attr[pad] == 0).all())
    assert not torch.equal(aug.edge_attr, g.edge_attr)
    assert bool(torch.isfinite(aug.edge_attr).all())


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        ("translate", RELU, r"Translate is defined for \['mlp'\] networks"),
        ("rotate", RELU, r"Rotate is defined for \['mlp'\]"),
        ("scale", RELU, r"Scale is defined for \['mlp'\]"),
        ("siren_bias", TANH, r"SirenBias is defined for \['mlp'\]"),
        ("siren_neg", RELU, r"only for activations"),
        ("siren_neg", TANH_MAX, r"a global max pooling is not odd"),
        ("positive_scale", TANH, r"only for activations \['identity', 'leaky_relu', 'relu'\]"),
    ],
)
def test_augmentations_that_do_not_hold_for_a_cnn_refuse_it(name, spec, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_augmentation(name, seed=0)(batch(spec))


def test_weight_matching_undoes_a_channel_relabeling() -> None:
    g = batch(RELU, b=1)
    h = random_relabel(g, torch.Generator().manual_seed(3))
    a, b = to_params(g)[0], to_params(h)[0]
    assert not torch.equal(a, b)
    torch.testing.assert_close(apply_perms(b, weight_matching(a, b, RELU), RELU), a)


MODELS = [
    ("relational_transformer", {"n_layers": 2, "d_node": 16, "d_edge": 8, "d_attn": 16}),
    ("relational_transformer", {"n_layers": 2, "d_node": 16, "d_edge": 8, "d_attn": 16,
                                "mode": "sparse", "probe_points": 8}),
    ("pna", {"n_layers": 2, "hidden": 16, "probe_points": 8}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "kwargs"), MODELS)
def test_graph_models_are_invariant_to_channel_relabelings(name: str, kwargs: dict) -> None:
    g = batch(RELU)
    torch.manual_seed(0)
    model = build_model(name, graph_spec(g), **kwargs).eval()
    h = random_relabel(g, torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(h).graph, model(g).graph, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(model(g).graph[0], model(g).graph[1])


def test_dws_refuses_cnns_with_a_pointer_to_what_works() -> None:
    with pytest.raises(ValueError, match=r"dws is the DWSNets layer for dense networks .* pna"):
        build_model("dws", RELU)


def test_sample_init_params_draws_cnns_like_pytorch() -> None:
    from nngraph.inr import sample_init_params

    params = sample_init_params(RELU, 200, torch.Generator().manual_seed(0))
    assert params.shape == (200, RELU.num_params)
    first = params[:, : 4 * 2 * 9]  # conv 2 -> 4, 3x3: U(+-1/sqrt(18)), std 1/sqrt(54)
    assert abs(float(first.std()) - 54**-0.5) < 0.01
    assert float(first.abs().max()) <= 18**-0.5
