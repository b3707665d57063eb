"""Shared runner of the paper-style tables: one training run per cell through
``nngraph.train.run``, each run's metrics curve kept, results appended to a JSON-lines file (a
rerun skips what is done), then a mean ± std markdown table."""

from __future__ import annotations

import json
import multiprocessing
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException

import nngraph
from nngraph.io import atomic_write_text, describe_error
from nngraph.train.logging import read_metrics
from nngraph.train.run import run

CONFIGS = str(nngraph.config_dir())

#: CPU budget: small models of the paper's structure, raw weights only (no probe features).
#: The relational transformer drops Fourier features of the weights (on digits they let it
#: memorise the training set without generalising) and pools the mean of all neurons.
BUDGET = {
    "relational_transformer": [
        "model.kwargs.mode=sparse",
        "model.kwargs.n_layers=2",
        "model.kwargs.d_node=32",
        # narrow pair states (8) and attention (8, one head): the pairs along 64 SIRENs' weights
        # are 41k rows and their tensors set the step time (compiled, 1 thread: 43 ms against 71
        # at attention 16 in 2 heads); it also overfits sooner (S = 400 against 800 steps), which
        # halves its protocol: the whole Table 1 fits 2 hours on 2 cores (RESULTS.md)
        "model.kwargs.d_edge=8",
        "model.kwargs.d_attn=8",
        "model.kwargs.d_node_hidden=64",
        "model.kwargs.d_edge_hidden=16",
        "model.kwargs.heads=1",
        "trainer.compile=true",
        "model.kwargs.fourier_dim=0",
        "model.kwargs.probe_points=0",
        # the mean over all neurons: with 2 sparse layers the output neuron (cat pooling) never
        # hears of the first layer's weights (3 hops away); see RESULTS.md
        "model.kwargs.pooling=mean",
    ],
    "dws": ["model.kwargs.n_layers=3", "model.kwargs.hidden=32", "model.kwargs.out_dim=32"],
    "pna": ["model.kwargs.n_layers=2", "model.kwargs.hidden=32", "model.kwargs.probe_points=0"],
    "mlp": [],
}


def cell_overrides(
    cell: dict, base: list[str], steps: int, eval_every: int, full: bool, extra: tuple = ()
) -> list:
    """Hydra overrides of one cell: its model, augmentation, views and seed, ``steps`` training
    steps (``trainer.epochs`` large enough, ``trainer.max_steps`` stops it), evaluated every
    ``eval_every`` steps (the best-validation checkpoint is tested), linear warmup over a tenth
    of the steps (at most 200); ``extra`` last, so it wins over the CPU budget's settings."""
    aug = cell["aug"]
    views = cell.get("views", 1)
    return [
        *base,
        f"model={cell['model']}",
        f"aug={aug}" if "," not in aug else f"aug=[{aug}]",
        f"data.views={views}",
        f"seed={cell['seed']}",
        "trainer.progress=false",
        *([] if full else BUDGET[cell["model"]]),
        f"trainer.epochs={steps}",  # an upper bound: max_steps ends the run
        f"trainer.max_steps={steps}",
        f"trainer.warmup_steps={max(1, min(200, steps // 10))}",
        f"trainer.eval_every={eval_every}",
        *extra,
    ]


def run_cell(overrides: list[str]) -> tuple[dict, list[dict]]:
    """Train one cell; its summary and its metrics curve (one record per evaluation)."""
    with initialize_config_dir(config_dir=CONFIGS, version_base=None):
        cfg = compose("config", overrides=overrides)
    with tempfile.TemporaryDirectory() as tmp:
        summary = run(cfg, tmp)
        curve = read_metrics(Path(tmp) / "metrics.jsonl")
    return summary, curve


def load_done(out: Path, repair: bool = True) -> dict[str, dict]:
    """The finished cells cached in ``out`` by key. A last line cut short (a run killed while
    appending) is dropped, so its cell runs again, and with ``repair`` the file is rewritten so
    appends go on cleanly; a damaged line before it is an error."""
    done = {}
    text = out.read_text() if out.exists() else ""
    lines = text.splitlines()
    for n, line in enumerate(lines, 1):
        try:
            r = json.loads(line)
            done[r["key"]] = r
        except (json.JSONDecodeError, KeyError, TypeError):
            if n < len(lines):
                raise SystemExit(f"{out}: line {n} is not a result; delete that line (or the file) "
                                 "to run its cell again") from None  # fmt: skip
            print(f"{out}: line {n} was cut short; its cell runs again", flush=True)
            lines.pop()
            break
    if repair and text and (len(lines) < len(text.splitlines()) or not text.endswith("\n")):
        atomic_write_text("".join(f"{kept}\n" for kept in lines), out)
    return done


def _one_thread() -> None:
    """Worker initialiser: one torch thread per process (``jobs`` processes share the cores)."""
    from nngraph.train.allocator import keep_freed_memory

    torch.set_num_threads(1)
    keep_freed_memory()


def _timed_cell(overrides: list[str]) -> tuple[dict, list[dict], float]:
    start = time.perf_counter()
    summary, curve = run_cell(overrides)
    return summary, curve, time.perf_counter() - start


def run_grid(
    cells: list[tuple[dict, list[str]]],
    out: Path,
    run_missing: bool = True,
    jobs: int = 1,
    metric: str = "test_acc",
) -> list:
    """Run every ``(cell, overrides)`` not yet in ``out`` (unless ``run_missing`` is false), in
    ``jobs`` worker processes of one thread each when ``jobs > 1``; each result (its ``metric``,
    every other test metric under ``test``) is appended to ``out`` as it finishes. Returns the
    results of the cells that are done, in ``cells`` order."""
    done = load_done(out, repair=run_missing)
    keys = [json.dumps({**cell, "overrides": o}, sort_keys=True) for cell, o in cells]
    todo = [i for i, k in enumerate(keys) if k not in done] if run_missing else []

    def record(i: int, summary: dict, curve: list, seconds: float) -> None:
        cell = cells[i][0]
        tests = {k[5:]: v for k, v in summary.items() if k.startswith("test_")}
        result = {"key": keys[i], **cell, metric: summary[metric], "test": tests,
                  "best_step": summary["best_step"], "steps": summary["steps"],
                  "seconds": seconds, "curve": curve}  # fmt: skip
        with out.open("a") as f:
            f.write(json.dumps(result) + "\n")
        done[keys[i]] = result
        best = f"{summary['best_step']}/{summary['steps']}"
        finished = sum(k in done for k in keys)
        print(f"[{finished}/{len(cells)}] {cell} {metric}={summary[metric]:.3f} best step "
              f"{best} ({seconds:.0f} s)", flush=True)  # fmt: skip

    if jobs <= 1:
        for i in todo:
            record(i, *_cell_result(cells[i][0], lambda i=i: _timed_cell(cells[i][1])))
    elif todo:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=spawn, initializer=_one_thread) as pool:
            futures = {pool.submit(_timed_cell, cells[i][1]): i for i in todo}
            try:
                for future in as_completed(futures):
                    i = futures[future]
                    record(i, *_cell_result(cells[i][0], future.result))
            finally:  # a cell that failed stops the grid: the others would fail alike
                pool.shutdown(cancel_futures=True)
    return [done[k] for k in keys if k in done]


def _cell_result(cell: dict, result) -> tuple:
    """``result()``, with a cell's bad settings or data (what train.py would print as one
    line) raised as one line naming the cell instead of a worker's traceback."""
    try:
        return result()
    except (ValueError, OSError, HydraException) as err:
        raise SystemExit(f"cell {cell}: {describe_error(err)}") from None


def search_runs(
    models: list[str],
    base: list[str],
    steps: int,
    eval_every: int,
    full: bool,
    out: Path,
    jobs: int = 1,
    run_missing: bool = True,
    extra: tuple = (),
) -> list[dict]:
    """One no-augmentation run per model (1 view, seed 0) for ``steps`` steps, the curve a table
    reads its budget from; cached in ``out`` like every cell, run in parallel with ``jobs``.
    With ``run_missing`` false nothing is trained: a model without its run is an error."""
    cells = []
    for m in models:
        cell = {"search": True, "model": m, "aug": "none", "views": 1, "seed": 0}
        cells.append((cell, cell_overrides(cell, base, steps, eval_every, full, extra)))
    runs = run_grid(cells, out, run_missing, jobs)
    missing = sorted({c["model"] for c, _ in cells} - {r["model"] for r in runs})
    if missing:
        raise SystemExit(f"no search run for {', '.join(missing)} in {out}: run without "
                         "--report-only first (or check --out-dir and the settings)")  # fmt: skip
    return runs


def mean_std(values: list[float], scale: float = 100, digits: int = 1) -> str:
    """``mean ± std`` of ``values * scale`` (one value: itself)."""
    if len(values) == 1:
        return f"{scale * values[0]:.{digits}f}"
    mean, std = scale * statistics.mean(values), scale * statistics.stdev(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def table(
    results: list[dict],
    rows: list[str],
    cols: list[tuple],
    col_names: list[str],
    seeds: int = 3,
    metric: str = "test_acc",
    scale: float = 100,
    digits: int = 1,
) -> str:
    """Markdown: one row per aug, one column per (model, views) pair, ``metric`` (test accuracy
    in % by default); a cell with fewer than ``seeds`` finished runs says how many it has, an
    empty one "not run"."""
    lines = ["| aug | " + " | ".join(col_names) + " |", "|---" * (len(cols) + 1) + "|"]
    for aug in rows:
        cells = []
        for col in cols:
            accs = [
                r[metric]
                for r in results
                if r["aug"] == aug and (r["model"], r.get("views", 1)) == col
            ]
            note = f" (n={len(accs)})" if 0 < len(accs) < seeds else ""
            cells.append(mean_std(accs, scale, digits) + note if accs else "not run")
        lines.append(f"| {aug} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
