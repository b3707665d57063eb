"""Weight matching: exact recovery of a relabeling, never worse than no alignment, much closer
same-class INRs, and the template cache behind fast aligned MixUp."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nngraph.align import (
    AlignmentCache,
    align_to_template,
    apply_alignment,
    apply_perms,
    compose_perms,
    compose_signed,
    invert_perms,
    invert_signed,
    signed_weight_matching,
    weight_matching,
)
from nngraph.augment import MixUpAlign
from nngraph.data import load_source
from nngraph.graph import ArchSpec, from_params, random_relabel, to_graph_batch, to_params
from nngraph.inr import coordinate_grid, fit_inrs, mlp_forward
from tests.helpers import SPECS, random_network, spec_id

HIDDEN = [s for s in SPECS if s.n_layers > 1]


def _params(spec: ArchSpec, seed: int) -> torch.Tensor:
    return torch.nn.utils.parameters_to_vector(random_network(spec, seed).parameters()).detach()


@pytest.mark.parametrize("spec", HIDDEN, ids=spec_id)
def test_a_relabeled_copy_aligns_back_exactly(spec: ArchSpec) -> None:
    a = _params(spec, 0)
    for seed in range(5):
        g, perms = random_relabel(
            from_params(a, spec), torch.Generator().manual_seed(seed), return_perms=True
        )
        b = to_params(g)
        found = weight_matching(a, b, spec)
        assert torch.equal(apply_perms(b, found, spec), a)  # zero distance
        assert all(torch.equal(f, p[0].argsort()) for f, p in zip(found, perms))


@pytest.mark.parametrize("spec", HIDDEN, ids=spec_id)
def test_alignment_never_increases_the_distance(spec: ArchSpec) -> None:
    for seed in range(10):
        a, b = _params(spec, 2 * seed), _params(spec, 2 * seed + 1)
        aligned = apply_perms(b, weight_matching(a, b, spec), spec)
        assert (a - aligned).norm() <= (a - b).norm() + 1e-6


def test_perm_algebra() -> None:
    spec = ArchSpec((2, 5, 4, 1))
    gen = torch.Generator().manual_seed(0)
    p = [torch.randperm(5, generator=gen), torch.randperm(4, generator=gen)]
    q = [torch.randperm(5, generator=gen), torch.randperm(4, generator=gen)]
    x = _params(spec, 3)
    both = apply_perms(apply_perms(x, p, spec), q, spec)
    assert torch.equal(both, apply_perms(x, compose_perms(p, q), spec))
    assert torch.equal(apply_perms(apply_perms(x, p, spec), invert_perms(p), spec), x)


def test_same_class_digit_inrs_align_much_closer() -> None:
    """On fitted digit INRs, weight matching removes most of the parameter distance between two
    INRs of one class. (Whether the aligned midpoint also draws the images better is measured, not
    asserted: python -m benchmarks.align prints both errors; see BENCHMARKS.md.)"""
    spec = ArchSpec.siren()
    digits = load_source("digits")
    rows = torch.cat([(digits.labels == c).nonzero().flatten()[:4] for c in range(3)])
    fit = fit_inrs(digits.images[rows], spec, steps=300, progress=False)
    before, after = [], []
    for start in range(0, len(rows), 2):
        a, b = fit.params[start], fit.params[start + 1]
        before.append(float((a - b).norm()))
        after.append(float((a - apply_perms(b, weight_matching(a, b, spec), spec)).norm()))
    assert all(y <= x for x, y in zip(before, after))
    assert sum(after) < 0.5 * sum(before)


def test_template_cache_makes_aligned_mixup_a_gather(tmp_path: Path) -> None:
    spec = ArchSpec.siren(hidden_dim=12)
    base = _params(spec, 0)
    copies = torch.stack(
        [to_params(random_relabel(from_params(base, spec), torch.Generator().manual_seed(s)))
         for s in range(6)]
    )  # fmt: skip
    cache = align_to_template(copies, spec, progress=False)
    assert len(cache) == 6
    in_template = apply_perms(copies, cache.perms, spec)
    assert torch.equal(in_template, in_template[0].expand_as(in_template))  # all in one frame
    path = cache.save(tmp_path / "s.pt.align.pt")
    loaded = AlignmentCache.load(path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.perms, cache.perms))
    g = to_graph_batch(copies, spec, y=torch.arange(6) % 2, idx=torch.arange(6))
    out = MixUpAlign(cache=loaded, num_classes=2, lam=0.3, seed=0)(g)
    # each copy mixed with its partner brought into its own frame: the copy itself, unchanged
    torch.testing.assert_close(to_params(out), copies, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="rows out of range"):
        cache.perms_for(torch.tensor([6]))
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="alignment cache .*bad.pt is corrupt"):
        AlignmentCache.load(tmp_path / "bad.pt")


def test_signed_matching_recovers_negations_and_permutations() -> None:
    from nngraph.augment import build_augmentation

    spec = ArchSpec.siren()
    a = _params(spec, 0)
    g = build_augmentation(["siren_neg", "permute"], seed=1)(to_graph_batch(a[None], spec))
    b = to_params(g)[0]
    assert (a - b).norm() > 1
    perms, signs = signed_weight_matching(a, b, spec)
    torch.testing.assert_close(apply_alignment(b, perms, spec, signs), a, rtol=0, atol=1e-6)
    # the signed relabeling algebra: composing with the inverse is the identity
    inv = invert_signed(perms, signs)
    both = compose_signed((perms, signs), inv)
    assert all(torch.equal(p, torch.arange(len(p))) for p in both[0])
    assert all(torch.equal(s, torch.ones_like(s)) for s in both[1])
    with pytest.raises(ValueError, match="odd activations only"):
        signed_weight_matching(a[:1], a[:1], ArchSpec.mlp((2, 3, 1)))


def test_signed_alignment_gives_better_midpoints_on_digit_inrs() -> None:
    """Linear mode connectivity, the argument behind mixup_align, on fitted digit INRs: 30
    same-class pairs (3 per class). Permutation-only matching does not improve the midpoints of
    these SIRENs (python -m benchmarks.align prints all three errors); adding negations does."""
    spec = ArchSpec.siren()
    digits = load_source("digits")
    rows = torch.cat([(digits.labels == c).nonzero().flatten()[:6] for c in range(10)])
    fit = fit_inrs(digits.images[rows], spec, progress=False)
    grid = coordinate_grid(8, 8)
    naive, signed = [], []
    for start in range(0, len(rows), 2):
        a, b = fit.params[start], fit.params[start + 1]
        images = digits.images[rows[start : start + 2]].reshape(2, 64, 1)
        perms, signs = signed_weight_matching(a, b, spec)
        aligned = apply_alignment(b, perms, spec, signs)
        for mid, errs in ((0.5 * (a + b), naive), (0.5 * (a + aligned), signed)):
            errs.append(float(((mlp_forward(mid[None], grid, spec) - images) ** 2).mean()))
    print(f"midpoint MSE: naive {sum(naive) / 30:.4f}, signed alignment {sum(signed) / 30:.4f}")
    assert sum(signed) < 0.9 * sum(naive)


def test_signed_template_cache_and_mixup(tmp_path: Path) -> None:
    from nngraph.augment import build_augmentation

    spec = ArchSpec.siren(hidden_dim=12)
    base = _params(spec, 0)
    flip = build_augmentation(["siren_neg", "permute"], seed=3)
    copies = to_params(flip(to_graph_batch(base.repeat(6, 1), spec)))
    cache = align_to_template(copies, spec, signed=True, progress=False)
    loaded = AlignmentCache.load(cache.save(tmp_path / "c.pt"))
    g = to_graph_batch(copies, spec, y=torch.arange(6) % 2, idx=torch.arange(6))
    out = MixUpAlign(cache=loaded, signs=True, num_classes=2, lam=0.3, seed=0)(g)
    torch.testing.assert_close(to_params(out), copies, rtol=0, atol=1e-6)
    unsigned = align_to_template(copies, spec, progress=False)
    with pytest.raises(ValueError, match="built with align_to_template\\(signed=True\\)"):
        MixUpAlign(cache=unsigned, signs=True)
