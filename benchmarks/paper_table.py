"""Table 1 of the paper on the digits INR store: models x augmentations x views x seeds.

Each cell trains a model on the training INRs (views 0..k-1 of each item), early-stops on
validation and reports test accuracy (mean ± std over seeds). The default budget runs on 2 CPU
cores: small models, the same number of steps for 1 and 10 views (105 at batch 64: 5 epochs of
1 view); pass ``--full`` for the configured (paper-size) models and trainer (a GPU job, with
``--trainer paper``). Results are appended to ``--out`` and a rerun skips finished cells.
Last line: ``ratio=`` best augmentation's mean accuracy / no augmentation's (1 view, mean over
models).
Run: ``python -m benchmarks.paper_table``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks._table import run_grid, table
from benchmarks._timing import machine

AUGS = ["none", "translate", "rotate", "scale", "gaussian_noise", "siren_bias", "siren_neg",
        "dropout", "quantile_dropout", "mixup", "mixup_perm", "mixup_align"]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["dws", "relational_transformer"])
    ap.add_argument("--augs", nargs="+", default=AUGS)
    ap.add_argument("--views", nargs="+", type=int, default=[1, 10])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=105, help="training steps per cell (CPU budget)")
    ap.add_argument("--full", action="store_true", help="configured model sizes and trainer")
    ap.add_argument("--trainer", default="default")
    ap.add_argument("--out", type=Path, default=Path("results/paper_table.jsonl"))
    ap.add_argument("--data-dir", default="data")
    args = ap.parse_args()
    print(machine())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid = [
        {"model": m, "aug": a, "views": v, "seed": s}
        for m in args.models
        for v in args.views
        for a in args.augs
        for s in args.seeds
    ]
    base = [f"trainer={args.trainer}", f"data_dir={args.data_dir}"]
    start = time.perf_counter()
    results = run_grid(grid, args.out, base, args.steps, args.full)
    cols = [(m, v) for m in args.models for v in args.views]
    names = [f"{m} ({v} view{'s' if v > 1 else ''})" for m, v in cols]
    print(f"\ntest accuracy (%), mean ± std over seeds {args.seeds}; "
          f"{(time.perf_counter() - start) / 60:.1f} min this run\n")  # fmt: skip
    print(table(results, args.augs, cols, names))

    def mean(aug: str) -> float:
        accs = [r["test_acc"] for r in results if r["aug"] == aug and r["views"] == min(args.views)]
        return statistics.mean(accs) if accs else float("nan")

    best = max((a for a in args.augs if a != "none"), key=mean, default="none")
    print(f"\nbest augmentation at {min(args.views)} view(s): {best}")
    print(f"ratio={mean(best) / mean('none'):.2f}")


if __name__ == "__main__":
    main()
