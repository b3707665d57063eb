"""The CNN side of the API refuses, with one line, whatever would silently change a network's
function (a contradicting spec, sign flips where negation is no symmetry, NaN settings) or crash
deep inside (wrong-sized rows, labels outside the classes, probe images smaller than a kernel)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from nngraph.align.template import align_to_template
from nngraph.align.weight_matching import weight_matching, weight_matching_batch
from nngraph.augment import build_augmentation
from nngraph.graph import ArchSpec, from_module, from_params, to_graph_batch, to_module
from nngraph.models import build_model, check_compatible
from nngraph.zoo.functional import cnn_forward

SPEC = ArchSpec.cnn((3, 6, 8), (5, 4), 3, stride=[1, 2])


def _cnn(act: type[nn.Module] = nn.Tanh, stride: int = 2) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=stride), act(), nn.AdaptiveMaxPool2d(1),
                         nn.Flatten(), nn.Linear(8, 4))  # fmt: skip


def test_a_spec_that_contradicts_a_readable_module_is_refused() -> None:
    module = _cnn()
    with pytest.raises(ValueError, match=r"contradicts the module .* in strides, paddings, "
                                         r"activations, global_pool"):  # fmt: skip
        from_module(module, spec=ArchSpec.cnn((3, 8), (4,)))
    x = torch.randn(2, 3, 9, 9)
    graph = from_module(module, spec=from_module(module).spec)  # the module's own spec passes
    assert torch.equal(to_module(graph)(x), module(x))


def test_an_mlp_spec_with_another_activation_is_refused() -> None:
    module = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"contradicts the module .* in activations"):
        from_module(module, spec=ArchSpec((3, 4, 2), activation="relu"))


@pytest.mark.parametrize(
    "spec",
    [ArchSpec.cnn((3, 6), (4,), 3), ArchSpec.cnn((3, 6), (4,), 3, activation="tanh",
                                                 global_pool="max")],
    ids=["relu", "tanh-max-pool"],
)  # fmt: skip
def test_signed_alignment_refuses_networks_negation_does_not_preserve(spec: ArchSpec) -> None:
    aug = build_augmentation({"mixup_align": {"signs": True, "lam": 0.0}}, num_classes=3, seed=0)
    batch = to_graph_batch(torch.randn(4, spec.num_params), spec, y=torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match=r"negation is a symmetry of odd activations only"):
        aug(batch)
    with pytest.raises(ValueError, match=r"negation is a symmetry of odd activations only"):
        weight_matching_batch(torch.randn(2, spec.num_params), torch.randn(2, spec.num_params),
                              spec, signed=True)  # fmt: skip


def test_signed_aligned_mixup_at_lam_0_is_the_partner_for_odd_cnns() -> None:
    spec = ArchSpec.cnn((3, 6), (4,), 3, activation="tanh")  # tanh, average pooling: odd
    aug = build_augmentation({"mixup_align": {"signs": True, "lam": 0.0}}, num_classes=3, seed=0)
    params = torch.randn(4, spec.num_params)
    out = aug(to_graph_batch(params, spec, y=torch.tensor([0, 1, 2, 1])))
    images = torch.randn(5, 3, 8, 8)
    for i, graph in enumerate(out.to_data_list()):
        partner = to_module(from_params(params[int(aug.last_partner[i])], spec))
        torch.testing.assert_close(to_module(graph)(images), partner(images), atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"positive_scale": {"max_factor": math.nan}}, r"max_factor=nan is not allowed"),
        ({"positive_scale": {"max_factor": math.inf}}, r"max_factor=inf is not allowed"),
        ({"gaussian_noise": {"scale": math.nan}}, r"scale=nan is not allowed"),
        ({"gaussian_noise": {"scale": -0.1}}, r"scale=-0.1 is not allowed"),
        ({"mixup": {"lam": math.nan}}, r"mixup lam=nan is not allowed"),
        ({"mixup": {"lam": 2.0}}, r"mixup lam=2.0 is not allowed: .* <= 1"),
        ({"mixup": {"alpha": -1.0}}, r"mixup alpha=-1.0 is not allowed: .* > 0"),
        ({"siren_neg": {"p": math.nan}}, r"siren_neg p=nan is not allowed"),
        ({"quantile_dropout": {"max_quantile": 2.0}}, r"max_quantile=2.0 is not allowed"),
        ({"dropout": {"p": math.nan}}, r"dropout p=nan is not allowed"),
        ({"siren_bias": {"k_max": 1.5}}, r"k_max=1.5 is not allowed: it must be an integer"),
    ],
)
def test_augmentation_settings_outside_their_range_are_refused(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_augmentation(config, num_classes=3, seed=0)


@pytest.mark.parametrize("labels", [[0, 1, 2, 5], [0, -1, 2, 1]])
def test_mixup_refuses_hard_labels_outside_the_classes(labels: list[int]) -> None:
    aug = build_augmentation("mixup", num_classes=3, seed=0)
    batch = to_graph_batch(torch.randn(4, SPEC.num_params), SPEC, y=torch.tensor(labels))
    with pytest.raises(ValueError, match=r"MixUp labels must lie in \[0, 3\)"):
        aug(batch)


def test_weight_matching_refuses_rows_of_another_architecture_or_with_nan() -> None:
    row = torch.randn(SPEC.num_params)
    longer = torch.randn(ArchSpec.cnn((3, 6, 8), (5, 4), 5, stride=[1, 2]).num_params)
    with pytest.raises(ValueError, match=rf"other must have shape \[{SPEC.num_params}\]"):
        weight_matching(row, longer, SPEC)
    with pytest.raises(ValueError, match=r"target must have shape .* got \(2, "):
        weight_matching(torch.randn(2, SPEC.num_params), row, SPEC)
    with pytest.raises(ValueError, match=r"other has NaN or Inf weights"):
        weight_matching(row, torch.full_like(row, math.nan), SPEC)
    with pytest.raises(ValueError, match=r"must both be \[B, "):
        weight_matching_batch(torch.randn(3, SPEC.num_params), torch.randn(2, SPEC.num_params),
                              SPEC)  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"rounds": 0}, "rounds=0"), ({"template_row": 10}, "template_row=10")]
)
def test_template_alignment_refuses_nonsense_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        align_to_template(torch.randn(4, SPEC.num_params), SPEC, progress=False, **kwargs)


def test_a_cnn_spec_without_strides_or_paddings_runs_everywhere() -> None:
    spec = ArchSpec((3, 8, 8, 16, 4), activation="relu", family="cnn",
                    layer_kinds=("conv2d", "conv2d", "linear", "linear"),
                    kernel_sizes=(3, 3, 1, 1))  # fmt: skip
    params = torch.randn(2, spec.num_params) * 0.1
    images = torch.randn(3, 3, 9, 9)
    logits = cnn_forward(params, images, spec)
    for i in range(2):  # the batched forward is the decoded module's (stride 1, no padding)
        expected = to_module(from_params(params[i], spec))(images)
        torch.testing.assert_close(logits[i], expected, atol=1e-5, rtol=0)
    for name in ("pna", "relational_transformer"):
        out = build_model(name, spec, probe_points=4)(to_graph_batch(params, spec))
        assert torch.isfinite(out.graph).all()


@pytest.mark.parametrize(
    "spec",
    [ArchSpec.cnn((3, 8), (4,), kernel_size=11, padding=0),
     ArchSpec.cnn((3, 8, 8, 8, 8), (4,), stride=2, padding=0)],
    ids=["kernel-11", "four-stride-2"],
)  # fmt: skip
def test_probe_images_grow_until_every_convolution_fits(spec: ArchSpec) -> None:
    params = torch.randn(2, spec.num_params) * 0.1
    for name in ("pna", "relational_transformer"):
        model = build_model(name, spec, probe_points=4)
        out = model(to_graph_batch(params, spec))
        assert torch.isfinite(out.graph).all()


def test_a_model_refuses_networks_whose_per_layer_activations_differ() -> None:
    built = ArchSpec.cnn((3, 6, 8), (4,), 3)
    other = dataclasses.replace(built, activations=("tanh", "tanh"))
    with pytest.raises(ValueError, match=r"activations per layer"):
        check_compatible(built, other, any_hidden_width=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": 3, "head": (4,)}, r"channels must be a list of integers, got 3"),
        ({"channels": (3, 8), "head": 4}, r"head must be a list of integers, got 4"),
        ({"channels": (3, 8), "head": (4,), "kernel_size": "3"}, r"kernel_size and padding"),
        ({"channels": (3, 8), "head": (4,), "stride": 1.5}, r"stride must be an integer"),
        ({"channels": (3, 8), "head": (4,), "stride": None}, r"stride must be an integer"),
    ],
)
def test_cnn_specs_of_the_wrong_types_name_the_argument(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ArchSpec.cnn(**kwargs)


def test_shapes_only_weights_and_a_spec_that_is_not_one_are_named() -> None:
    with pytest.raises(ValueError, match=r"on the meta device"):
        from_module(_cnn().to("meta"))
    with pytest.raises(ValueError, match=r"spec must be an ArchSpec, got str"):
        from_params(torch.zeros(SPEC.num_params), "cnn")
    with pytest.raises(ValueError, match=r"probe_points must be >= 0"):
        build_model("pna", SPEC, probe_points=-3)


def test_a_relabeling_without_permutations_and_unknown_highlights_are_named() -> None:
    from nngraph.graph import relabel
    from nngraph.viz import draw_neural_graph

    graph = from_params(torch.randn(SPEC.num_params), SPEC)
    with pytest.raises(ValueError, match=r"perms must be a list of tensors"):
        relabel(graph, None)
    with pytest.raises(ValueError, match=r"highlight names nodes the graph does not have"):
        draw_neural_graph(graph, highlight={10**6})
