"""Table 1 of the paper on the digits INR store, measured where augmentations can matter.

1. **Overfitting point.** For each model, one run without augmentation (1 view, seed 0) for
   ``--search-steps`` steps, validation loss every ``--eval-every`` steps: the step where it
   bottoms out is that model's overfitting point ``S``.
2. **Every cell** (model x augmentation x views x seed) then trains ``--factor`` x ``S`` steps at
   one view (well past the point where validation loss turns up without augmentation), with the
   paper's view protocol for ten views (a third of the one-view epochs, as its 300/100: ten times
   the data, so 10/3 as many steps), evaluated every ``--eval-every`` steps; the checkpoint best
   on validation accuracy is tested (early stopping).
3. Writes ``table1.md`` (mean ± std over seeds, each model's ``S``, wall clock) and one
   Figure-1-style plot per model, ``figure1_<model>.png`` (train and validation loss, none vs
   aligned MixUp), into ``--out-dir``; raw results with every run's curve go to
   ``--out-dir/paper_table.jsonl`` (a rerun skips finished cells).

CPU budget by default (small models, raw weights only; ``benchmarks/_table.py``); ``--full`` uses
the configured sizes (a GPU job, with ``--trainer paper``).
Last line: ``ratio=`` best augmentation's mean accuracy / no augmentation's (1 view, mean over
models).
Run: ``python -m benchmarks.paper_table``; the shapes table (3-D SDF INRs, the paper's
ModelNet40 half): ``python -m benchmarks.paper_table --data shapes --augs none siren_neg mixup
mixup_align`` (files ``shapes_table.*`` / ``figure1_shapes_<model>.png``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks._table import cell_overrides, run_grid, search_runs, table
from benchmarks._timing import machine

AUGS = ["none", "siren_neg", "gaussian_noise", "translate", "mixup", "mixup_perm", "mixup_align"]


def overfitting_points(args: argparse.Namespace, base: list[str]) -> dict[str, int]:
    """Each model's ``S``: where validation loss of its no-augmentation search run bottoms out."""
    runs = search_runs(args.models, base, args.search_steps, args.eval_every, args.full,
                       args.out_dir / f"{args.prefix}.jsonl", args.jobs,
                       not args.report_only)  # fmt: skip
    points = {}
    for r in runs:
        best = min(r["curve"], key=lambda x: x["val_loss"])
        points[r["model"]] = best["step"]
        print(f"{r['model']}: validation loss bottoms out at step {best['step']} "
              f"({best['val_loss']:.3f}), {r['curve'][-1]['val_loss']:.3f} at the end "
              f"({r['seconds']:.0f} s)", flush=True)  # fmt: skip
    return points


def _one_per_step(curve: list[dict]) -> list[dict]:
    """The curve with one record per step (runs before the fix logged a stop step twice, the
    second time with no training loss)."""
    return [r for i, r in enumerate(curve) if i == 0 or r["step"] != curve[i - 1]["step"]]


def figure1(results: list[dict], model: str, path: Path, data: str = "digits") -> None:
    """Train and validation loss of seed 0, 1 view: no augmentation vs aligned MixUp."""
    from nngraph.viz import loss_curves_figure

    runs = {r["aug"]: _one_per_step(r["curve"]) for r in results
            if r["model"] == model and r["views"] == 1 and r["seed"] == 0}  # fmt: skip
    chosen = {name: runs[name] for name in ("none", "mixup_align") if name in runs}
    if chosen:
        fig = loss_curves_figure(chosen, title=f"{model}, {data}, 1 view")
        fig.savefig(path, dpi=120)


def cost(results: list[dict], cells: list[tuple[dict, list[str]]], jobs: int) -> str:
    """What the protocol costs: worker time of the finished cells, and the missing cells' time
    projected from the measured seconds per step of finished cells of the same model."""
    per_step = {}
    for m in {c["model"] for c, _ in cells}:
        done = [r for r in results if r["model"] == m]
        if done:
            per_step[m] = sum(r["seconds"] for r in done) / sum(r["steps"] for r in done)
    done_keys = {(r["model"], r["aug"], r["views"], r["seed"]) for r in results}
    missing = [(c, o) for c, o in cells if (c["model"], c["aug"], c["views"], c["seed"])
               not in done_keys]  # fmt: skip
    spent = sum(r["seconds"] for r in results)
    ahead = sum(per_step.get(c["model"], float("nan")) * _steps(o) for c, o in missing)
    speeds = ", ".join(f"{m} {1e3 * v:.0f} ms/step" for m, v in sorted(per_step.items()))
    return (f"{len(results)}/{len(cells)} cells done, {spent / 3600:.2f} worker-hours ({speeds}, "
            f"measured in the cells); the {len(missing)} missing cells: about "
            f"{ahead / 3600:.2f} worker-hours more; the whole grid about "
            f"{(spent + ahead) / 3600 / jobs:.2f} h with {jobs} worker(s)")  # fmt: skip


def _steps(overrides: list[str]) -> int:
    return next(int(o.split("=")[1]) for o in overrides if o.startswith("trainer.max_steps="))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["dws", "relational_transformer"])
    ap.add_argument("--augs", nargs="+", default=AUGS)
    ap.add_argument("--views", nargs="+", type=int, default=[1, 10])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--search-steps", type=int, default=1500, help="no-aug run that finds S")
    ap.add_argument("--factor", type=float, default=3.0, help="1-view budget: factor x S steps")
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes, one thread each")
    ap.add_argument("--full", action="store_true", help="configured model sizes and trainer")
    ap.add_argument("--trainer", default="default")
    ap.add_argument("--out-dir", type=Path, default=Path("results"))
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--data", default="digits", help="the data config (digits, shapes, ...)")
    ap.add_argument("--report-only", action="store_true",
                    help="only tabulate the cells already in the results file")  # fmt: skip
    args = ap.parse_args()
    if args.factor < 3:
        print(f"note: --factor {args.factor} < 3 stops before augmentations can show their effect")
    print(machine())
    args.out_dir.mkdir(parents=True, exist_ok=True)
    base = [f"trainer={args.trainer}", f"data_dir={args.data_dir}"]
    if args.data != "digits":  # (digits cells keep the keys of the results they already have)
        base.append(f"data={args.data}")
    args.prefix = "paper_table" if args.data == "digits" else f"{args.data}_table"
    start = time.perf_counter()
    points = overfitting_points(args, base)
    cells = []  # one view first, then more views, "none" first: what the claims need comes first
    for v in sorted(args.views):
        for a in sorted(args.augs, key=lambda a: a != "none"):
            for m in args.models:
                steps = round(args.factor * points[m] * (1 if v == 1 else v / 3))
                for s in args.seeds:
                    cell = {"model": m, "aug": a, "views": v, "seed": s}
                    cells.append((cell, cell_overrides(cell, base, steps, args.eval_every,
                                                       args.full)))  # fmt: skip
    results = run_grid(cells, args.out_dir / f"{args.prefix}.jsonl", not args.report_only,
                       args.jobs)  # fmt: skip
    minutes = (time.perf_counter() - start) / 60  # this invocation; cost() adds up every cell
    cols = [(m, v) for m in args.models for v in args.views]
    names = [f"{m} ({v} view{'s' if v > 1 else ''})" for m, v in cols]
    text = table(results, args.augs, cols, names, len(args.seeds))
    budgets = ", ".join(f"{m}: S = {points[m]} steps" for m in args.models)
    report = (f"test accuracy (%), mean ± std over seeds {args.seeds}; overfitting points "
              f"{budgets}; 1 view trains {args.factor:g} x S steps, 10 views 10/3 as many; "
              f"{minutes:.1f} min this run\n\n{cost(results, cells, args.jobs)}\n\n"
              f"{text}\n")  # fmt: skip
    print("\n" + report)
    (args.out_dir / ("table1.md" if args.data == "digits" else f"{args.prefix}.md")).write_text(
        report
    )
    for m in args.models:
        name = f"figure1_{m}.png" if args.data == "digits" else f"figure1_{args.data}_{m}.png"
        figure1(results, m, args.out_dir / name, args.data)

    def mean(aug: str) -> float:
        accs = [r["test_acc"] for r in results if r["aug"] == aug and r["views"] == min(args.views)]
        return statistics.mean(accs) if accs else float("nan")

    best = max((a for a in args.augs if a != "none"), key=mean, default="none")
    print(f"best augmentation at {min(args.views)} view(s): {best}")
    print(f"ratio={mean(best) / mean('none'):.2f}")


if __name__ == "__main__":
    main()
