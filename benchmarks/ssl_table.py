"""SimCLR with and without weight-space augmentations, evaluated by a linear probe (test accuracy
of logistic regression on frozen embeddings), on the digits INR store; mean ± std over seeds.

"none" gives both views the same INR (only the model's own symmetry handling separates them);
the others draw each view's augmentation independently. CPU budget by default (small models,
105 steps); ``--full`` for the configured sizes.
Last line: ``ratio=`` best augmented probe accuracy / probe accuracy without augmentation.
Run: ``python -m benchmarks.ssl_table``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks._table import run_grid, table
from benchmarks._timing import machine

AUGS = ["none", "siren_neg", "translate,gaussian_noise,siren_neg", "mixup_align", "reference"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["relational_transformer"])
    ap.add_argument("--augs", nargs="+", default=AUGS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=105)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("results/ssl_table.jsonl"))
    ap.add_argument("--data-dir", default="data")
    args = ap.parse_args()
    print(machine())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid = [{"model": m, "aug": a, "views": 1, "seed": s}
            for m in args.models for a in args.augs for s in args.seeds]  # fmt: skip
    start = time.perf_counter()
    base = ["task=simclr", f"data_dir={args.data_dir}"]
    results = run_grid(grid, args.out, base, args.steps, args.full)
    cols = [(m, 1) for m in args.models]
    print(f"\nlinear-probe test accuracy (%), mean ± std over seeds {args.seeds}; "
          f"{(time.perf_counter() - start) / 60:.1f} min this run\n")  # fmt: skip
    print(table(results, args.augs, cols, [f"{m} (SimCLR)" for m in args.models]))

    def mean(aug: str) -> float:
        return statistics.mean(r["test_acc"] for r in results if r["aug"] == aug)

    others = [a for a in args.augs if a != "none"]
    if "none" not in args.augs or not others:
        print("ratio=1.00  (needs 'none' and at least one augmentation to compare)")
        return
    best = max(others, key=mean)
    print(f"\nbest augmentation: {best}")
    print(f"ratio={mean(best) / mean('none'):.2f}")


if __name__ == "__main__":
    main()
