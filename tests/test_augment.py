"""Augmentations decoded back to INRs: symmetries keep the function, input-space ones transform the
coordinates exactly, MixUp interpolates, and every draw is per graph and reproducible."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch

from nngraph.align import apply_perms, weight_matching
from nngraph.augment import AUGMENTATIONS, MixUp, MixUpAlign, MixUpPerm, build_augmentation
from nngraph.graph import ArchSpec, from_params, graph_spec, to_graph_batch, to_params
from nngraph.inr import coordinate_grid, mlp_forward
from tests.helpers import random_network

SIREN = ArchSpec.siren()
RELU = ArchSpec.mlp((2, 16, 16, 1), activation="relu")
GRID = coordinate_grid(28, 28)


def _batch(spec: ArchSpec, b: int = 6, seed: int = 0, **kw) -> Batch:
    params = torch.stack([
        torch.nn.utils.parameters_to_vector(random_network(spec, seed + i).parameters()).detach()
        for i in range(b)
    ])  # fmt: skip
    return to_graph_batch(params, spec, **kw)


def _render(g: Batch, coords: torch.Tensor = GRID) -> torch.Tensor:
    return mlp_forward(to_params(g), coords, graph_spec(g))


@pytest.mark.parametrize(
    ("name", "spec"),
    [("permute", SIREN), ("siren_neg", SIREN), ("siren_bias", SIREN), ("permute", RELU),
     ("positive_scale", RELU), ("siren_neg", ArchSpec.mlp((2, 8, 8, 1), activation="tanh"))],
)  # fmt: skip
def test_symmetries_keep_the_function_and_change_the_parameters(name: str, spec: ArchSpec) -> None:
    g = _batch(spec, b=8)
    out = build_augmentation(name, seed=0)(g)
    before, after = _render(g), _render(out)
    scale = before.abs().max()
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5 * float(scale))
    changed = (to_params(out) - to_params(g)).abs().amax(dim=1) > 1e-3
    assert bool(changed.all()), changed  # every graph got new parameters
    assert torch.equal(out.edge_index, g.edge_index) and out.x.device == g.x.device


def test_translate_rotate_scale_transform_the_coordinates_exactly() -> None:
    g = _batch(SIREN, b=5)
    translate = build_augmentation("translate", seed=1)
    out = translate(g)
    for i in range(5):
        shifted = GRID - translate.last_shift[i]
        expected = mlp_forward(to_params(g)[i : i + 1], shifted, SIREN)
        torch.testing.assert_close(_render(out)[i : i + 1], expected, rtol=0, atol=1e-4)
    rotate = build_augmentation("rotate", seed=2)
    out = rotate(g)
    for i in range(5):
        rot = rotate.last_rotation[i]
        assert torch.allclose(rot @ rot.T, torch.eye(2), atol=1e-6)
        angle = math.degrees(math.atan2(float(rot[1, 0]), float(rot[0, 0])))
        assert abs(angle) <= 30.0
        expected = mlp_forward(to_params(g)[i : i + 1], GRID @ rot.T, SIREN)
        torch.testing.assert_close(_render(out)[i : i + 1], expected, rtol=0, atol=1e-4)
    scale = build_augmentation("scale", seed=3)
    out = scale(g)
    assert bool(((scale.last_scale >= 0.8) & (scale.last_scale <= 1.2)).all())
    for i in range(5):
        expected = mlp_forward(to_params(g)[i : i + 1], GRID * scale.last_scale[i], SIREN)
        torch.testing.assert_close(_render(out)[i : i + 1], expected, rtol=0, atol=1e-4)


def test_rotate_in_3d() -> None:
    spec = ArchSpec.siren(in_dim=3, hidden_dim=16, n_layers=3, out_offset=0.0)
    g = _batch(spec, b=3)
    rotate = build_augmentation("rotate", seed=4)
    out = rotate(g)
    points = torch.rand(100, 3) * 2 - 1
    for i in range(3):
        rot = rotate.last_rotation[i]
        assert torch.allclose(rot @ rot.T, torch.eye(3), atol=1e-5)
        expected = mlp_forward(to_params(g)[i : i + 1], points @ rot.T, spec)
        got = mlp_forward(to_params(out)[i : i + 1], points, spec)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("cls", [MixUp, MixUpPerm, MixUpAlign])
def test_mixup_endpoints_and_labels(cls: type) -> None:
    g = _batch(SIREN, b=6, y=torch.tensor([0, 1, 2, 0, 1, 2]))
    one = cls(num_classes=3, lam=1.0, seed=0)
    out = one(g)
    assert torch.equal(to_params(out), to_params(g))  # lam = 1: the sample itself
    assert torch.equal(out.y, torch.nn.functional.one_hot(g.y, 3).float())
    zero = cls(num_classes=3, lam=0.0, seed=0)
    out = zero(g)
    partner = zero.last_partner
    torch.testing.assert_close(_render(out), _render(g)[partner], rtol=0, atol=1e-5)  # partner's
    assert torch.equal(out.y, torch.nn.functional.one_hot(g.y[partner], 3).float())
    if cls is MixUpAlign:  # the partner as weight matching aligns it to the sample
        params = to_params(g)
        for i in range(6):
            perms = weight_matching(params[i], params[partner[i]], SIREN)
            expected = apply_perms(params[partner[i]], perms, SIREN)
            torch.testing.assert_close(to_params(out)[i], expected)
    mixed = cls(num_classes=3, seed=5)
    out = mixed(g)
    lam, partner = mixed.last_lam, mixed.last_partner
    onehot = torch.nn.functional.one_hot(g.y, 3).float()
    torch.testing.assert_close(out.y, lam[:, None] * onehot + (1 - lam[:, None]) * onehot[partner])
    assert bool(((lam > 0) & (lam < 1)).all()) and len(set(lam.tolist())) == 6


def test_plain_mixup_is_the_straight_interpolation() -> None:
    g = _batch(SIREN, b=4, y=torch.tensor([0, 1, 0, 1]))
    mix = MixUp(num_classes=2, seed=0)
    out = mix(g)
    p, lam, j = to_params(g), mix.last_lam, mix.last_partner
    torch.testing.assert_close(to_params(out), lam[:, None] * p + (1 - lam[:, None]) * p[j])
    beta = MixUp(num_classes=2, alpha=0.4, seed=0)
    beta(g)
    assert bool(((beta.last_lam >= 0) & (beta.last_lam <= 1)).all())


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_independent_per_graph_and_reproducible(name: str) -> None:
    spec = RELU if name == "positive_scale" else SIREN
    one = _batch(spec, b=1)
    same = to_graph_batch(
        to_params(one).repeat(8, 1), spec, y=torch.arange(8) % 2, idx=torch.arange(8)
    )
    if name.startswith("mixup"):  # partners must differ for mixing to show
        same = _batch(spec, b=8, y=torch.arange(8) % 2, idx=torch.arange(8))
    make = lambda seed: build_augmentation(name, seed=seed, num_classes=2)  # noqa: E731
    a, b, c = make(0)(same), make(0)(same), make(1)(same)
    assert torch.equal(a.x, b.x) and torch.equal(a.edge_attr, b.edge_attr)  # seeded: reproducible
    assert not (torch.equal(a.x, c.x) and torch.equal(a.edge_attr, c.edge_attr))
    rows = to_params(a)
    if not name.startswith("mixup"):
        assert len({tuple(r.tolist()) for r in rows}) > 1  # not one draw for the whole batch
    assert a.x.device == same.x.device and a.x.dtype == same.x.dtype


def test_bad_inputs_are_explained() -> None:
    mixed = Batch.from_data_list(
        [from_params(torch.zeros(SIREN.num_params), SIREN),
         from_params(torch.zeros(RELU.num_params), RELU)]
    )  # fmt: skip
    with pytest.raises(ValueError, match="mixes architectures"):
        build_augmentation("siren_neg")(mixed)
    five = _batch(ArchSpec.siren(in_dim=5, hidden_dim=4), b=2)
    with pytest.raises(ValueError, match="rotate needs INRs of 2-D or 3-D inputs.*takes 5"):
        build_augmentation("rotate")(five)
    with pytest.raises(ValueError, match="unknown augmentation 'cutmix'; known: none, dropout"):
        build_augmentation(["siren_neg", "cutmix"])
    with pytest.raises(ValueError, match="SirenBias preserves the function only for .*sine"):
        build_augmentation("siren_bias")(_batch(RELU, b=2))
    with pytest.raises(ValueError, match="PositiveScale preserves the function only for"):
        build_augmentation("positive_scale")(_batch(SIREN, b=2))
    with pytest.raises(ValueError, match="needs num_classes"):
        build_augmentation("mixup")(_batch(SIREN, b=2, y=torch.tensor([0, 1])))
    with pytest.raises(ValueError, match="needs each graph's store row in batch.idx"):
        from nngraph.align import align_to_template

        cache = align_to_template(to_params(_batch(SIREN, b=2)), SIREN, progress=False)
        MixUpAlign(cache=cache, num_classes=2)(_batch(SIREN, b=2, y=torch.tensor([0, 1])))
    with pytest.raises(ValueError, match="bad options for augmentation 'dropout'"):
        build_augmentation({"dropout": {"probability": 0.2}})


def test_configs_compose_into_pipelines(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir
    from torch_geometric.transforms import Compose

    import nngraph
    from nngraph.augment import GaussianNoise, SirenNegation, Translate

    configs = str(nngraph.config_dir())
    with initialize_config_dir(configs, version_base=None):
        pair = compose("config", overrides=["aug=[siren_neg,mixup_align]"]).aug
        reference = compose("config", overrides=["aug=reference"]).aug
        none = compose("config", overrides=["aug=none"]).aug
        every = {name: compose("config", overrides=[f"aug={name}"]).aug for name in AUGMENTATIONS}
    pipeline = build_augmentation(pair, num_classes=10)
    assert isinstance(pipeline, Compose)
    assert [type(t) for t in pipeline.transforms] == [SirenNegation, MixUpAlign]
    ref = build_augmentation(reference, num_classes=10)
    assert [type(t) for t in ref.transforms] == [
        MixUpAlign,
        Translate,
        GaussianNoise,
        SirenNegation,
    ]
    g = _batch(SIREN, b=3, y=torch.tensor([0, 1, 2]))
    assert torch.equal(build_augmentation(none)(g).x, g.x)
    for name, node in every.items():
        assert type(build_augmentation(node, num_classes=10)) is AUGMENTATIONS[name]


def test_a_seeded_pipeline_gives_each_step_its_own_stream() -> None:
    pipeline = build_augmentation(["siren_neg", "siren_neg"], seed=0)
    first, second = pipeline.transforms
    draws = [t.uniform(100, low=0, high=1, device=torch.device("cpu")) for t in (first, second)]
    assert not torch.equal(draws[0], draws[1])


def test_generic_augmentations_have_the_advertised_size() -> None:
    g = _batch(SIREN, b=64)
    t = SIREN.templates
    w1 = g.edge_attr.view(64, -1)[:, 64:1088]  # seq.1.weight block of every graph
    noisy = build_augmentation("gaussian_noise", seed=0)(g)
    delta = (noisy.edge_attr.view(64, -1)[:, 64:1088] - w1).std(dim=1)
    ratio = delta / w1.std(dim=1, correction=0)
    assert 0.28 < float(ratio.mean()) < 0.36  # 0.32 x the layer's std
    dropped = build_augmentation("dropout", seed=0)(g)
    zeroed = (dropped.edge_attr == 0) & (g.edge_attr != 0)
    assert 0.08 < float(zeroed.float().mean()) < 0.12
    kept = ~zeroed & (g.edge_attr != 0)
    torch.testing.assert_close(dropped.edge_attr[kept], g.edge_attr[kept] / 0.9)
    quantile = build_augmentation("quantile_dropout", seed=0)
    out = quantile(g)
    frac = (out.edge_attr == 0).view(64, -1).float().mean(dim=1)
    assert float(frac.max()) <= 0.11 and float(frac.mean()) > 0.01
    smallest_kept = out.edge_attr.view(64, -1).abs().masked_fill(out.edge_attr.view(64, -1) == 0, 9)
    largest_zeroed = g.edge_attr.view(64, -1).abs().masked_fill(out.edge_attr.view(64, -1) != 0, 0)
    assert bool((largest_zeroed.amax(1) <= smallest_kept.amin(1)).all())
    for aug in (noisy, dropped, out):  # input neurons have no bias, and still have none
        assert bool((aug.x.view(64, -1)[:, t.role == 0] == 0).all())


def test_beta_mixup_follows_alpha() -> None:
    g = _batch(SIREN, b=64, y=torch.arange(64) % 2)
    spread = MixUp(num_classes=2, alpha=0.1, seed=0)
    spread(g)
    peaked = MixUp(num_classes=2, alpha=20.0, seed=0)
    peaked(g)
    edges = ((spread.last_lam < 0.1) | (spread.last_lam > 0.9)).float().mean()
    assert float(edges) > 0.6  # Beta(0.1, 0.1) sits near 0 and 1
    assert float((peaked.last_lam - 0.5).abs().max()) < 0.35  # Beta(20, 20) near 1/2


def test_label_shapes() -> None:
    g = _batch(SIREN, b=4, y=torch.tensor([[0], [1], [2], [1]]))
    mix = MixUp(num_classes=3, lam=1.0, seed=0)
    assert torch.equal(mix(g).y, torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 1]), 3).float())
    soft = torch.softmax(torch.randn(4, 3), dim=1)
    g = _batch(SIREN, b=4, y=soft)
    mix = MixUp(lam=0.25, seed=0)  # soft labels need no num_classes
    out = mix(g)
    torch.testing.assert_close(out.y, 0.25 * soft + 0.75 * soft[mix.last_partner])


def test_cached_alignment_uses_store_rows_and_refuses_stale_frames() -> None:
    from nngraph.align import align_to_template
    from nngraph.graph import from_params, random_relabel

    spec = ArchSpec.siren(hidden_dim=12)
    base = torch.nn.utils.parameters_to_vector(random_network(spec, 0).parameters()).detach()
    store = torch.stack(
        [to_params(random_relabel(from_params(base, spec), torch.Generator().manual_seed(s)))
         for s in range(10)]
    )  # fmt: skip
    cache = align_to_template(store, spec, progress=False)
    rows = torch.tensor([7, 2, 9, 4])  # a batch is a subset of the store, in any order
    g = to_graph_batch(store[rows], spec, y=torch.tensor([0, 1, 0, 1]), idx=rows)
    out = MixUpAlign(cache=cache, num_classes=2, lam=0.0, seed=0)(g)
    torch.testing.assert_close(to_params(out), store[rows], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="change which neuron is which before it"):
        build_augmentation(["permute", "mixup_align"], cache=cache, num_classes=2)
    build_augmentation(["mixup_align", "permute"], cache=cache, num_classes=2)  # fine this way
    other = _batch(SIREN, b=2, y=torch.tensor([0, 1]), idx=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="alignment cache was built for"):
        MixUpAlign(cache=cache, num_classes=2)(other)


def test_seeded_augmentation_in_a_dataloader_worker_warns() -> None:
    from unittest import mock

    g = _batch(SIREN, b=2)
    with mock.patch("torch.utils.data.get_worker_info", return_value=object()):
        with pytest.warns(UserWarning, match="replays the same draws"):
            build_augmentation("siren_neg", seed=0)(g)
