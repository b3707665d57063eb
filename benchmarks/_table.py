"""Shared runner of the paper-style tables: one training run per (model, aug, views, seed) through
``nngraph.train.run``, results appended to a JSON-lines file (a rerun skips what is done), then a
mean ± std markdown table."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from nngraph.train.run import run

CONFIGS = str(Path(__file__).resolve().parents[1] / "nngraph" / "configs")

#: CPU budget: small models (same structure as the paper's), probe features for the graph models
BUDGET = {
    "relational_transformer": [
        "model.kwargs.n_layers=2",
        "model.kwargs.d_node=32",
        "model.kwargs.d_edge=16",
        "model.kwargs.d_attn=32",
        "model.kwargs.d_node_hidden=64",
        "model.kwargs.d_edge_hidden=32",
        "model.kwargs.heads=4",
        "model.kwargs.fourier_dim=32",
        "model.kwargs.probe_points=32",
    ],
    "dws": ["model.kwargs.n_layers=3", "model.kwargs.hidden=32", "model.kwargs.out_dim=32"],
    "pna": ["model.kwargs.n_layers=2", "model.kwargs.hidden=32", "model.kwargs.probe_points=32"],
    "mlp": [],
}


def run_grid(
    grid: list[dict], out: Path, base: list[str], steps_per_view1: int, full: bool
) -> list[dict]:
    """Run every cell of ``grid`` not yet in ``out``; return all results."""
    done = {}
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done[r["key"]] = r
    for i, cell in enumerate(grid):
        key = json.dumps({**cell, "budget": [*base, f"steps={steps_per_view1}", f"full={full}"]},
                         sort_keys=True)  # fmt: skip
        if key in done:
            continue
        aug = cell["aug"]
        aug_arg = f"aug={aug}" if "," not in aug else f"aug=[{aug}]"
        # the same number of steps for every cell (21 steps make an epoch of 1 view at batch 64)
        epochs = max(1, -(-steps_per_view1 // (21 * cell["views"]))) if not full else None
        overrides = [
            *base,
            f"model={cell['model']}",
            aug_arg,
            f"data.n_views={cell['views']}",
            f"seed={cell['seed']}",
            "trainer.progress=false",
            *([] if full else BUDGET[cell["model"]]),
            *([] if epochs is None else [f"trainer.epochs={epochs}"]),
            *([] if full else [f"trainer.max_steps={steps_per_view1}"]),
        ]
        with initialize_config_dir(config_dir=CONFIGS, version_base=None):
            cfg = compose("config", overrides=overrides)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            summary = run(cfg, tmp)
        seconds = time.perf_counter() - start
        result = {"key": key, **cell, "test_acc": summary["test_acc"], "seconds": seconds}
        with out.open("a") as f:
            f.write(json.dumps(result) + "\n")
        done[key] = result
        print(f"[{i + 1}/{len(grid)}] {cell} test_acc={summary['test_acc']:.3f} "
              f"({result['seconds']:.0f} s)", flush=True)  # fmt: skip
    return [r for r in done.values() if any(all(r[k] == c[k] for k in c) for c in grid)]


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def table(results: list[dict], rows: list[str], cols: list[tuple], col_names: list[str]) -> str:
    """Markdown: one row per aug, one column per (model, views) pair, test accuracy in %."""
    lines = ["| aug | " + " | ".join(col_names) + " |", "|---" * (len(cols) + 1) + "|"]
    for aug in rows:
        cells = []
        for col in cols:
            accs = [
                r["test_acc"]
                for r in results
                if r["aug"] == aug and (r["model"], r["views"]) == col
            ]
            cells.append(mean_std(accs) if accs else "")
        lines.append(f"| {aug} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
