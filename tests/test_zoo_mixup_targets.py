"""benchmarks.zoo_mixup_targets: a CNN mixed with itself, or with weight 1 on one side, has exactly
MixUp's target accuracy; a mixed pair of different CNNs is a real, different network."""

from __future__ import annotations

import torch

from benchmarks.zoo_mixup_targets import mixup_target_errors
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
    mixed = mixup_target_errors(params, acc, SPEC, images, labels, first, other, lam)
    assert not torch.equal(mixed["plain"]["true"], mixed["plain"]["target"])
    by_hand = lam.view(-1, 1) * params[first] + (1 - lam.view(-1, 1)) * params[other]
    torch.testing.assert_close(
        mixed["plain"]["true"], evaluate(by_hand, images, labels, SPEC)["accuracy"]
    )
