"""Weight matching throughput, and what aligned MixUp costs in a training step.

1. Weight-matching pairs per second (2-32-32-1 SIRENs, pairwise, scipy's linear assignment).
2. A training step (batch 64: build the graph batch, augment, forward, backward, AdamW) with
   ``mixup_align`` through the template cache against the same step with plain ``mixup``. The model
   is a stand-in until nngraph's own models land: two PyG ``GINEConv`` layers (hidden 64) with edge
   features, mean pooling and a linear head. Last line: ``overhead=`` (extra time as a fraction).
Run: ``python -m benchmarks.align``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch_geometric.nn import GINEConv, global_mean_pool

from benchmarks._timing import machine, median_seconds
from nngraph.align import (
    align_to_template,
    apply_alignment,
    apply_perms,
    signed_weight_matching,
    weight_matching,
)
from nngraph.augment import build_augmentation
from nngraph.data import load_source
from nngraph.graph import ArchSpec, to_graph_batch
from nngraph.inr import coordinate_grid, fit_inrs, mlp_forward, sample_init_params


class StandInModel(nn.Module):
    """A small message-passing classifier over neural graphs (not equivariance-tested)."""

    def __init__(self, hidden: int = 64, classes: int = 10) -> None:
        super().__init__()
        self.node_in, self.edge_in = nn.Linear(1, hidden), nn.Linear(1, hidden)
        mlp = lambda: nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))  # noqa: E731
        self.convs = nn.ModuleList([GINEConv(mlp()), GINEConv(mlp())])
        self.head = nn.Linear(hidden, classes)

    def forward(self, g) -> torch.Tensor:
        h, e = self.node_in(g.x), self.edge_in(g.edge_attr)
        for conv in self.convs:
            h = torch.relu(conv(h, g.edge_index, e))
        return self.head(global_mean_pool(h, g.batch))


def midpoint_errors(
    spec: ArchSpec, per_class: int = 6, classes: int = 10
) -> tuple[float, float, float]:
    """Mean squared error of the midpoint INR of same-class digit pairs against the pair's two
    images: naive, after weight matching, and after signed weight matching (linear mode
    connectivity, the argument behind mixup_align)."""
    digits = load_source("digits")
    rows = torch.cat([(digits.labels == c).nonzero().flatten()[:per_class] for c in range(classes)])
    fit = fit_inrs(digits.images[rows], spec, progress=False)
    grid = coordinate_grid(8, 8)
    errors: dict[str, list[float]] = {"naive": [], "perm": [], "signed": []}
    for start in range(0, len(rows), 2):
        a, b = fit.params[start], fit.params[start + 1]
        images = digits.images[rows[start : start + 2]].reshape(2, 64, 1)
        perms, signs = signed_weight_matching(a, b, spec)
        partners = {
            "naive": b,
            "perm": apply_perms(b, weight_matching(a, b, spec), spec),
            "signed": apply_alignment(b, perms, spec, signs),
        }
        for key, partner in partners.items():
            out = mlp_forward((0.5 * (a + partner))[None], grid, spec)
            errors[key].append(float(((out - images) ** 2).mean()))
    naive, perm, signed = (sum(v) / len(v) for v in errors.values())
    return naive, perm, signed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--inrs", type=int, default=512, help="training set of the step benchmark")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    spec = ArchSpec.siren()
    gen = torch.Generator().manual_seed(0)
    a = (
        sample_init_params(spec, args.pairs, gen)
        + torch.randn(args.pairs, spec.num_params, generator=gen) * 0.05
    )
    b = (
        sample_init_params(spec, args.pairs, gen)
        + torch.randn(args.pairs, spec.num_params, generator=gen) * 0.05
    )
    start = time.perf_counter()
    for i in range(args.pairs):
        weight_matching(a[i], b[i], spec)
    pairs_per_s = args.pairs / (time.perf_counter() - start)

    params = sample_init_params(spec, args.inrs, gen)
    labels = torch.randint(0, 10, (args.inrs,), generator=gen)
    start = time.perf_counter()
    cache = align_to_template(params, spec, progress=False)
    cache_seconds = time.perf_counter() - start
    model = StandInModel()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    plain = build_augmentation("mixup", num_classes=10, seed=0)
    aligned = build_augmentation("mixup_align", num_classes=10, seed=0, cache=cache)

    def step(aug) -> None:
        rows = torch.randint(0, args.inrs, (args.batch,))
        g = aug(to_graph_batch(params[rows], spec, y=labels[rows], idx=rows))
        loss = torch.nn.functional.cross_entropy(model(g), g.y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for aug in (plain, aligned):  # warm up both
        step(aug)
    plain_times, aligned_times = [], []
    for _ in range(args.repeats):  # interleaved, so drift on the machine hits both alike
        for aug, times in ((plain, plain_times), (aligned, aligned_times)):
            start = time.perf_counter()
            step(aug)
            times.append(time.perf_counter() - start)
    t_plain, t_aligned = statistics.median(plain_times), statistics.median(aligned_times)
    rows = torch.arange(args.batch)
    g = to_graph_batch(params[rows], spec, y=labels[rows], idx=rows)
    aug_plain = median_seconds(lambda: plain(g), args.repeats)
    aug_aligned = median_seconds(lambda: aligned(g), args.repeats)
    naive_mid, aligned_mid, signed_mid = midpoint_errors(spec)

    print(machine())
    print(f"weight matching, {spec}: {pairs_per_s:,.0f} pairs/s ({args.pairs} random pairs)")
    print(f"template cache for {args.inrs} INRs (2 rounds): {cache_seconds:.1f} s")
    print(f"training step, batch {args.batch}, stand-in GNN: mixup {t_plain * 1e3:.1f} ms, "
          f"mixup_align (cache) {t_aligned * 1e3:.1f} ms")  # fmt: skip
    print(f"augmentation alone: mixup {aug_plain * 1e3:.2f} ms, mixup_align (cache) "
          f"{aug_aligned * 1e3:.2f} ms")  # fmt: skip
    print(f"midpoints of 30 same-class digit INR pairs, MSE to their two images: naive "
          f"{naive_mid:.4f}, weight matching {aligned_mid:.4f}, signed weight matching "
          f"{signed_mid:.4f}")  # fmt: skip
    print(f"overhead={(t_aligned - t_plain) / t_plain:.3f}")


if __name__ == "__main__":
    main()
