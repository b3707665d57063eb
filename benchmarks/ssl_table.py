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
``benchmarks/_table.py``); ``--full`` for the configured sizes; ``--probe-points N`` gives the
models probe features. Writes ``ssl_table.md`` (``ssl_table_probe<N>.md``) into ``--out-dir``.
Last line: ``ratio=`` best augmented probe accuracy / probe accuracy without augmentation.
Run: ``python -m benchmarks.ssl_table``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks._table import cell_overrides, run_grid, search_runs, table
from benchmarks._timing import machine

AUGS = ["none", "siren_neg", "translate,gaussian_noise,siren_neg", "mixup_align", "reference"]


def plateau_points(args: argparse.Namespace, base: list[str], more: tuple = ()) -> dict[str, int]:
    """Each model's ``S``: the step where its no-augmentation validation probe peaks."""
    runs = search_runs(args.models, base, args.search_steps, args.eval_every, args.full,
                       args.out_dir / "ssl_table.jsonl", args.jobs,
                       not args.report_only, more)  # fmt: skip
    points = {}
    for r in runs:
        best = max(r["curve"], key=lambda x: x["val_acc"])
        points[r["model"]] = int(best["step"])
        accs = ", ".join(f"{x['step']}: {100 * x['val_acc']:.1f}" for x in r["curve"])
        print(f"{r['model']}: probe accuracy peaks at step {best['step']} (validation by step: "
              f"{accs})", flush=True)  # fmt: skip
    return points


def extra(args: argparse.Namespace) -> tuple[str, ...]:
    """Overrides after the CPU budget's: ``--probe-points N`` gives the models probe features."""
    if args.probe_points is None:
        return ()
    if args.probe_points < 1:
        raise SystemExit(f"--probe-points must be at least 1, got {args.probe_points}")
    return (f"model.kwargs.probe_points={args.probe_points}",)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["dws"])
    ap.add_argument("--augs", nargs="+", default=AUGS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--search-steps", type=int, default=1000)
    ap.add_argument("--factor", type=float, default=2.0, help="budget: factor x S steps")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes, one thread each")
    ap.add_argument("--out-dir", type=Path, default=Path("results"))
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument(
        "--probe-points",
        type=int,
        default=None,
        help="give the models probe features at this many points (default: none)",
    )
    args = ap.parse_args()
    more = extra(args)  # refuses nonsense before anything is written
    print(machine())
    args.out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    base = ["task=simclr", f"data_dir={args.data_dir}"]
    points = plateau_points(args, base, more)
    cells = []
    for a in args.augs:
        for m in args.models:
            steps = round(args.factor * points[m])
            for s in args.seeds:
                cell = {"model": m, "aug": a, "views": 1, "seed": s}
                overrides = cell_overrides(cell, base, steps, args.eval_every, args.full, more)
                cells.append((cell, overrides))
    results = run_grid(cells, args.out_dir / "ssl_table.jsonl", not args.report_only, args.jobs)
    cols = [(m, 1) for m in args.models]
    probes = f" + {args.probe_points} probe points" if args.probe_points else ""
    names = [f"{m}{probes} (SimCLR)" for m in args.models]
    text = table(results, args.augs, cols, names, len(args.seeds))
    where = ", ".join(f"{m}: S = {points[m]}" for m in args.models)
    report = (f"linear-probe test accuracy (%), mean ± std over seeds {args.seeds}; probe peaks "
              f"without augmentation at {where}; every cell trains {args.factor:g} x S steps; "
              f"{(time.perf_counter() - start) / 60:.1f} min this run\n\n{text}\n")  # fmt: skip
    print("\n" + report)
    name = f"ssl_table_probe{args.probe_points}.md" if args.probe_points else "ssl_table.md"
    (args.out_dir / name).write_text(report)

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
