"""Is a mixed CNN's accuracy the mixed accuracy? MixUp's regression target against the truth.

MixUp on the zoo trains on ``lam * a + (1 - lam) * b`` with the target
``lam * acc(a) + (1 - lam) * acc(b)``. This takes random pairs of the zoo's training CNNs, mixes
them (plainly; after aligning ``b`` to ``a`` by weight matching the pair; and after aligning both
through the store's cached alignment to a template, which is what ``aug=mixup_align`` trains
with), measures each mixed CNN's real test accuracy and compares it with that target. Needs the
default zoo (``python -m nngraph.zoo``). Run: ``python -m benchmarks.zoo_mixup_targets``; the
last line is the plain target's mean error over the template-aligned one's (as trained).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import scipy.stats
import torch
from torch import Tensor

from benchmarks._inputs import open_zoo
from benchmarks._timing import machine
from nngraph.align.template import cached_alignment
from nngraph.align.weight_matching import apply_perms, compose_perms, invert_perms, weight_matching
from nngraph.data import load_source
from nngraph.graph import ArchSpec
from nngraph.zoo.build import default_zoo_path
from nngraph.zoo.train import evaluate


def mixup_target_errors(
    params: Tensor,
    accuracy: Tensor,
    spec: ArchSpec,
    images: Tensor,
    labels: Tensor,
    first: Tensor,
    second: Tensor,
    lam: Tensor,
    to_template: list[Tensor] | None = None,
) -> dict[str, dict[str, Tensor]]:
    """For each pair ``(first[i], second[i])`` of rows of ``params`` mixed with ``lam[i]``:
    the mixed CNN's real accuracy on ``images`` and MixUp's target, plain and aligned (pairwise
    weight matching; and, given ``to_template`` (each row's permutations into a template's frame,
    ``[len(params), n_k]`` per hidden layer), through the template as training does)."""
    if not first.shape == second.shape == lam.shape or first.dim() != 1:
        raise ValueError(f"first, second and lam must be [pairs] each, got {tuple(first.shape)}, "
                         f"{tuple(second.shape)}, {tuple(lam.shape)}")  # fmt: skip
    target = lam * accuracy[first] + (1 - lam) * accuracy[second]
    a, b = params[first], params[second]
    partners = {"plain": b}
    partners["aligned"] = torch.stack(
        [apply_perms(y, weight_matching(x, y, spec), spec) for x, y in zip(a, b, strict=True)]
    )
    if to_template is not None:  # b into the template's frame, then into a's
        into_a = compose_perms([p[second] for p in to_template],
                               invert_perms([p[first] for p in to_template]))  # fmt: skip
        partners["template"] = apply_perms(b, into_a, spec)
    out = {}
    for name, partner in partners.items():
        mixed = lam.view(-1, 1) * a + (1 - lam.view(-1, 1)) * partner
        true = evaluate(mixed, images, labels, spec)["accuracy"]
        out[name] = {"true": true, "target": target}
    return out


def _report(name: str, true: Tensor, target: Tensor, lam: Tensor) -> float:
    """Print how far the real accuracies are from the targets; return the mean absolute error."""
    err = true - target
    mid = (lam > 0.2) & (lam < 0.8)
    tau = scipy.stats.kendalltau(true, target).statistic
    tau_mid = scipy.stats.kendalltau(true[mid], target[mid]).statistic
    print(f"{name:8s} real - target: mean {err.mean() * 100:+.1f} points, mean |.| "
          f"{err.abs().mean() * 100:.1f} (lam in 0.2-0.8: {err[mid].mean() * 100:+.1f}, "
          f"|.| {err[mid].abs().mean() * 100:.1f}); Kendall tau(real, target) {tau:.3f} "
          f"({tau_mid:.3f} for lam in 0.2-0.8)")  # fmt: skip
    return float(err.abs().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", type=Path, default=default_zoo_path("data", "digits"))
    ap.add_argument("--pairs", type=int, default=400, help="at least 10")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.pairs < 10:
        raise SystemExit(f"--pairs must be at least 10 (Kendall tau of fewer says little), "
                         f"got {args.pairs}")  # fmt: skip
    store = open_zoo(args.zoo)
    source = load_source(store.meta["zoo"]["source"])
    images = source.images[source.is_test].permute(0, 3, 1, 2).contiguous()
    labels = source.labels[source.is_test]
    train = store.indices("train")
    params, acc = store.params[train].float(), store.columns["test_accuracy"][train].float()
    gen = torch.Generator().manual_seed(args.seed)
    first = torch.randint(0, len(train), (args.pairs,), generator=gen)
    second = torch.randint(0, len(train), (args.pairs,), generator=gen)
    lam = torch.rand(args.pairs, generator=gen)
    template = cached_alignment(store, args.zoo).perms_for(train)  # what mixup_align uses
    result = mixup_target_errors(
        params, acc, store.spec, images, labels, first, second, lam, template
    )
    print(machine())
    print(f"{args.pairs} random pairs of the zoo's {len(train)} training CNNs ({store.spec}), "
          f"lam ~ U(0, 1); the CNNs' own mean test accuracy {acc.mean() * 100:.1f}%")  # fmt: skip
    errors = {name: _report(name, r["true"], r["target"], lam) for name, r in result.items()}
    print(f"ratio={errors['plain'] / max(errors['template'], 1e-12):.2f}")


if __name__ == "__main__":
    main()
