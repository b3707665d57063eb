"""SimCLR with and without weight-space augmentations, judged by a linear probe (logistic regression
on frozen embeddings: train split -> validation during training, -> test at the end), on the
digits INR store; mean ± std over seeds.

1. **Where the probe stops rising.** One run without augmentation (seed 0) for
   ``--search-steps`` steps, probe accuracy on validation every ``--eval-every`` steps: the step
   of its best value is ``S``.
2. **Every cell** (augmentation x seed) trains ``--factor`` x ``S`` steps; the checkpoint with the
   best validation probe is tested.

"none" gives both views the same INR (only the model's own symmetry handling separates them); the
others draw each view's augmentation independently. CPU budget by default (the small models of
``benchmarks/_table.py``); ``--full`` for the configured sizes. Writes ``ssl_table.md`` into
``--out-dir``.
Last line: ``ratio=`` best augmented probe accuracy / probe accuracy without augmentation.
Run: ``python -m benchmarks.ssl_table``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from benchmarks._table import cell_overrides, load_done, run_cell, run_grid, table
from benchmarks._timing import machine

AUGS = ["none", "siren_neg", "translate,gaussian_noise,siren_neg", "mixup_align", "reference"]


def plateau_point(model: str, args: argparse.Namespace, base: list[str]) -> int:
    """The step where the no-augmentation probe peaks (the search run is cached)."""
    cell = {"search": True, "model": model, "aug": "none", "views": 1, "seed": 0}
    overrides = cell_overrides(cell, base, args.search_steps, args.eval_every, args.full)
    key = json.dumps({**cell, "overrides": overrides}, sort_keys=True)
    out = args.out_dir / "ssl_table.jsonl"
    done = load_done(out)
    if key not in done:
        _, curve = run_cell(overrides)
        best = max(curve, key=lambda r: r["val_acc"])
        done[key] = {"key": key, **cell, "curve": curve, "S": best["step"]}
        with out.open("a") as f:
            f.write(json.dumps(done[key]) + "\n")
    r = done[key]
    accs = ", ".join(f"{x['step']}: {100 * x['val_acc']:.1f}" for x in r["curve"])
    print(f"{model}: probe accuracy peaks at step {r['S']} (validation by step: {accs})")
    return int(r["S"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["dws"])
    ap.add_argument("--augs", nargs="+", default=AUGS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--search-steps", type=int, default=1000)
    ap.add_argument("--factor", type=float, default=2.0, help="budget: factor x S steps")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--out-dir", type=Path, default=Path("results"))
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    print(machine())
    args.out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    base = ["task=simclr", f"data_dir={args.data_dir}"]
    points = {m: plateau_point(m, args, base) for m in args.models}
    cells = []
    for a in args.augs:
        for m in args.models:
            steps = round(args.factor * points[m])
            for s in args.seeds:
                cell = {"model": m, "aug": a, "views": 1, "seed": s}
                cells.append((cell, cell_overrides(cell, base, steps, args.eval_every, args.full)))
    results = run_grid(cells, args.out_dir / "ssl_table.jsonl", run_missing=not args.report_only)
    cols = [(m, 1) for m in args.models]
    text = table(results, args.augs, cols, [f"{m} (SimCLR)" for m in args.models], len(args.seeds))
    where = ", ".join(f"{m}: S = {points[m]}" for m in args.models)
    report = (f"linear-probe test accuracy (%), mean ± std over seeds {args.seeds}; probe peaks "
              f"without augmentation at {where}; every cell trains {args.factor:g} x S steps; "
              f"{(time.perf_counter() - start) / 60:.1f} min this run\n\n{text}\n")  # fmt: skip
    print("\n" + report)
    (args.out_dir / "ssl_table.md").write_text(report)

    def mean(aug: str) -> float:
        accs = [r["test_acc"] for r in results if r["aug"] == aug]
        return statistics.mean(accs) if accs else float("nan")

    others = [a for a in args.augs if a != "none"]
    if "none" not in args.augs or not others:
        print("ratio=1.00  (needs 'none' and at least one augmentation to compare)")
        return
    best = max(others, key=mean)
    print(f"\nbest augmentation: {best}")
    print(f"ratio={mean(best) / mean('none'):.2f}")


if __name__ == "__main__":
    main()
