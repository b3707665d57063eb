"""Predicting a CNN's test accuracy from its weights on the zoo: Kendall's tau on the zoo's test
split for the graph models, the flat MLP and StatNN, with and without the augmentations that hold
for CNNs, 3 seeds; StatNN with gradient boosting (Unterthiner et al.'s best) as the bar.

Every cell is one ``train.py data=zoo task=regression`` run (early stopping on validation tau),
cached in ``results/zoo_table.jsonl`` so a rerun resumes (48 runs of 30 epochs: about 40 minutes
on 2 CPU cores). Needs the default zoo: build it first with ``python -m nngraph.zoo``. Run:
``python -m benchmarks.zoo_table [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmarks._inputs import open_zoo, positive_int
from benchmarks._table import mean_std, run_grid, table
from benchmarks._timing import machine
from nngraph.data.store import INRStore
from nngraph.io import atomic_write_text
from nngraph.models.statnn import statnn_baseline
from nngraph.tasks.regression import regression_metrics
from nngraph.zoo.build import default_zoo_path

MODELS = ["relational_transformer", "pna", "mlp", "statnn"]
AUGS = ["none", "permute", "mixup", "mixup_align"]
#: CPU sizes: small graph models on the zoo's 51-node graphs, probe features on 16 probe images
SIZES = {
    "relational_transformer": ["model.kwargs.mode=sparse", "model.kwargs.n_layers=2",
                               "model.kwargs.d_node=32", "model.kwargs.d_edge=8",
                               "model.kwargs.d_attn=16", "model.kwargs.heads=2",
                               "model.kwargs.d_edge_hidden=16",
                               "model.kwargs.fourier_dim=0", "model.kwargs.probe_points=16",
                               "model.kwargs.pooling=mean"],
    "pna": ["model.kwargs.n_layers=2", "model.kwargs.hidden=32", "model.kwargs.probe_points=16",
            "model.kwargs.fourier_dim=0", "model.kwargs.pooling=mean"],
    "mlp": [],
    "statnn": [],
}  # fmt: skip


def cell_overrides(
    cell: dict, base: list[str], epochs: int, extra: list[str] | tuple[str, ...] = ()
) -> list[str]:
    """``train.py`` overrides of one cell: its model at CPU size, then ``extra`` (which win)."""
    named = [f"model={cell['model']}", f"aug={cell['aug']}", f"seed={cell['seed']}"]
    return [*base, *named, *SIZES[cell["model"]], f"trainer.epochs={epochs}",
            "trainer.progress=false", *extra]  # fmt: skip


def gradient_boosting(store: INRStore, seeds: list[int]) -> list[float]:
    """Test tau of StatNN with gradient boosting, one fit per seed."""
    target = store.columns["test_accuracy"]
    train, test = store.indices("train"), store.indices("test")
    taus = []
    for seed in seeds:
        pred = statnn_baseline(store.params[train], target[train], store.params[test], store.spec,
                               seed=seed)  # fmt: skip
        taus.append(regression_metrics(pred, target[test])["tau"])
    return taus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    ap.add_argument("--augs", nargs="+", default=AUGS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=positive_int, default=30)
    ap.add_argument(
        "--jobs", type=positive_int, default=2, help="worker processes, one thread each"
    )
    ap.add_argument("--out-dir", type=Path, default=Path("results"))
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--override", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                    help="train.py overrides added to every cell, after the table's own sizes "
                         "(e.g. model.kwargs.dropout=0.3); needs its own --out-dir")  # fmt: skip
    args = ap.parse_args()
    if args.override and args.out_dir == ap.get_default("out_dir"):
        ap.error("--override needs its own --out-dir (it would overwrite results/zoo_table.md)")
    print(machine())
    zoo = default_zoo_path(args.data_dir, "digits")
    store = open_zoo(zoo)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    base = [f"data_dir={args.data_dir}", "data=zoo", "task=regression"]
    # the zoo's content in each cell's key: results from another build of the zoo are not reused
    zoo_id = store.digest()[:16]
    cells = [({"model": m, "aug": a, "seed": s, "zoo": zoo_id},
              cell_overrides({"model": m, "aug": a, "seed": s}, base, args.epochs, args.override))
             for a in args.augs for m in args.models for s in args.seeds]  # fmt: skip
    results = run_grid(cells, args.out_dir / "zoo_table.jsonl", not args.report_only, args.jobs,
                       metric="test_tau")  # fmt: skip
    text = table(results, args.augs, [(m, 1) for m in args.models], args.models,
                 len(args.seeds), metric="test_tau", scale=1, digits=3)  # fmt: skip
    gbm = gradient_boosting(store, args.seeds)
    report = (f"Kendall tau of predicted vs true test accuracy on the zoo's test split "
              f"({len(store.indices('test'))} CNNs of {store.spec}), mean ± std over seeds "
              f"{args.seeds}; {args.epochs} epochs, early stopping on validation tau"
              f"{'; ' + ' '.join(args.override) if args.override else ''}\n\n{text}\n\n"
              f"StatNN with gradient boosting: {mean_std(gbm, 1, 3)}\n")  # fmt: skip
    print("\n" + report)
    atomic_write_text(report, args.out_dir / "zoo_table.md")
    best = max((r["test_tau"] for r in results), default=float("nan"))
    print(f"ratio={best / statistics.mean(gbm):.3f}")  # best graph-model tau over StatNN-GBM's


if __name__ == "__main__":
    main()
