"""benchmarks.zoo_mixup_targets: a CNN mixed with itself, or with weight 1 on one side, has exactly
MixUp's target accuracy; a mixed pair of different CNNs is a real, different network."""

from __future__ import annotations

import pytest
import torch

from benchmarks.zoo_mixup_targets import mixup_target_errors
from nngraph.align.weight_matching import apply_perms, weight_matching
from nngraph.graph import ArchSpec
from nngraph.zoo.functional import cnn_init
from nngraph.zoo.train import evaluate

SPEC = ArchSpec.cnn((1, 4, 6), (5, 3), 3, stride=[1, 2])


def test_mixup_targets_are_exact_where_mixing_changes_nothing() -> None:
    gen = torch.Generator().manual_seed(0)
    params = cnn_init(SPEC, torch.full((6,), 2.0), generator=gen)
    images, labels = (
        torch.randn(40, 1, 8, 8, generator=gen),
        torch.randint(0, 3, (40,), generator=gen),
    )
    acc = evaluate(params, images, labels, SPEC)["accuracy"]
    first, other = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 5, 0, 1])
    lam = torch.tensor([0.3, 0.7, 0.5, 0.9])
    same = mixup_target_errors(params, acc, SPEC, images, labels, first, first, lam)
    whole = mixup_target_errors(params, acc, SPEC, images, labels, first, other, torch.ones(4))
    for result in (same, whole):
        for kind in ("plain", "aligned"):
            torch.testing.assert_close(result[kind]["true"], result[kind]["target"])
    # every row sent by the same relabeling into the template: the pair's relative frame is
    # unchanged, so the template-aligned mix is the plain one
    shared = [
        torch.randperm(n, generator=gen).expand(len(params), n) for n in SPEC.layer_sizes[1:-1]
    ]
    mixed = mixup_target_errors(params, acc, SPEC, images, labels, first, other, lam, shared)
    assert not torch.equal(mixed["plain"]["true"], mixed["plain"]["target"])
    torch.testing.assert_close(mixed["template"]["true"], mixed["plain"]["true"])
    a, b, w = params[first], params[other], lam.view(-1, 1)
    aligned_b = torch.stack(
        [apply_perms(y, weight_matching(x, y, SPEC), SPEC) for x, y in zip(a, b)]
    )
    for kind, partner in (("plain", b), ("aligned", aligned_b)):
        by_hand = evaluate(w * a + (1 - w) * partner, images, labels, SPEC)["accuracy"]
        torch.testing.assert_close(mixed[kind]["true"], by_hand)


def test_mixup_targets_refuse_pairs_of_different_lengths() -> None:
    params = cnn_init(SPEC, torch.ones(3))
    with pytest.raises(ValueError, match="must be \\[pairs\\] each"):
        mixup_target_errors(params, torch.zeros(3), SPEC, torch.zeros(2, 1, 8, 8),
                            torch.zeros(2, dtype=torch.long), torch.tensor([0, 1]),
                            torch.tensor([1]), torch.ones(2))  # fmt: skip
