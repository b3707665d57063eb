"""Training-step speed of the weight-space models, and dense vs sparse relational attention.

1. Training steps per second (forward, backward, AdamW) of every model at its default size on a
   batch of 64 FMNIST-size SIREN graphs (2-32-32-1), as samples per second.
2. The relational transformer in ``dense`` (all neuron pairs) and ``sparse`` (pairs along weights)
   mode as the input network widens (2-w-w-1, w = 32 ... 1024): time of one training step and
   peak memory, each size in its own process under a memory cap, so a size that does not fit is
   reported as such instead of taking the machine down.
Last line: ``ratio=`` sparse/dense speed at the widest width both modes ran.
Run: ``python -m benchmarks.models``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from benchmarks._timing import machine, median_seconds
from nngraph.graph import ArchSpec, to_graph_batch
from nngraph.models import MODELS, MLPHead, build_model
from nngraph.train.allocator import keep_freed_memory


def train_step_seconds(
    name: str, spec: ArchSpec, batch: int, repeats: int, compile_layers: bool = False, **kw
) -> float:
    """Median seconds of one forward + backward + AdamW step of model ``name`` (its layer stack
    compiled first when ``compile_layers``, as ``trainer.compile``)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = build_model(name, spec, **kw).to(device)
    if compile_layers and not model.compile_layers():
        raise ValueError(f"{name} has no compiled layer stack")
    head = MLPHead(model.out_dim, 10).to(device)
    opt = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=1e-3)
    params = torch.randn(batch, spec.num_params, device=device) * 0.1
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        g = to_graph_batch(params, spec)
        loss = torch.nn.functional.cross_entropy(head(model(g).graph), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return median_seconds(step, repeats, warmup=2)


def _status_bytes(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak_rss() -> int:
    """Reset the kernel's peak-RSS mark (Linux) and return the current RSS in bytes."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _status_bytes("VmRSS")


def _peak_rss() -> int:
    return _status_bytes("VmHWM")


def child(mode: str, width: int, batch: int, repeats: int) -> None:
    """Run in a subprocess: one width, one mode; prints a JSON line."""
    spec = ArchSpec.siren(hidden_dim=width, n_layers=3)
    base = _reset_peak_rss()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        sec = train_step_seconds("relational_transformer", spec, batch, repeats, mode=mode)
    except (RuntimeError, MemoryError) as err:  # the allocator's out-of-memory
        print(json.dumps({"error": str(err).splitlines()[0][:80]}))
        return
    if torch.cuda.is_available():
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = (_peak_rss() - base) / 2**20
    print(json.dumps({"seconds": sec, "peak_mb": peak_mb}))


def run_width(mode: str, width: int, batch: int, repeats: int, cap_gb: float, limit_s: float):
    def cap() -> None:
        limit = int(cap_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    cmd = [sys.executable, "-m", "benchmarks.models", "--child", mode, str(width)]
    cmd += ["--batch", str(batch), "--repeats", str(repeats)]
    try:
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=limit_s,
            preexec_fn=None if torch.cuda.is_available() else cap,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"over {limit_s:.0f} s"}
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"crashed: {tail[:80]}"}
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 128, 256, 512, 1024])
    ap.add_argument("--wide-batch", type=int, default=1, help="batch of the width sweep")
    ap.add_argument("--wide-repeats", type=int, default=3)
    ap.add_argument("--cap-gb", type=float, default=16.0, help="memory cap per width (CPU)")
    ap.add_argument("--limit-s", type=float, default=300.0, help="time cap per width")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "WIDTH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # plain malloc here: the cap and the peak measure real use, not a kept heap
        child(args.child[0], int(args.child[1]), args.batch, args.repeats)
        return
    keep_freed_memory()  # as train.py does (see nngraph.train.allocator)

    print(machine())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device: {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}")
    spec = ArchSpec.siren()
    print(f"\n1. training step, batch {args.batch} of {spec}, default model sizes")
    print(f"{'model':<28}{'params':>10}{'ms/step':>10}{'samples/s':>12}")
    runs = [(n, {}) for n in MODELS] + [("relational_transformer", {"mode": "sparse"})]
    for name, kw in runs:
        label = name + (" (sparse)" if kw else "")
        n_params = sum(p.numel() for p in build_model(name, spec, **kw).parameters())
        sec = train_step_seconds(name, spec, args.batch, args.repeats, **kw)
        print(f"{label:<28}{n_params:>10,}{sec * 1e3:>10.1f}{args.batch / sec:>12.0f}")

    print(f"\n2. relational transformer, dense vs sparse, batch {args.wide_batch}, 2-w-w-1")
    cap = f"{args.cap_gb:g} GiB memory cap" if device == "cpu" else "GPU memory"
    print(f"   (one process per cell, {cap}, {args.limit_s:.0f} s cap)")
    print(
        f"{'width':>6}{'nodes':>7}{'weights':>10}  {'dense ms':>10}{'MB':>8}  "
        f"{'sparse ms':>10}{'MB':>8}  {'sparse/dense speed':>19}"
    )
    last_ratio = None
    for w in args.widths:
        s = ArchSpec.siren(hidden_dim=w, n_layers=3)
        start = time.perf_counter()
        cells = {}
        for mode in ("dense", "sparse"):
            cells[mode] = run_width(
                mode, w, args.wide_batch, args.wide_repeats, args.cap_gb, args.limit_s
            )
        row = f"{w:>6}{s.num_nodes:>7}{s.num_edges:>10,}  "
        for mode in ("dense", "sparse"):
            c = cells[mode]
            row += (
                f"{c['seconds'] * 1e3:>10.1f}{c['peak_mb']:>8.0f}  "
                if "seconds" in c
                else f"{c['error'][:18]:>18}  "
            )
        if all("seconds" in c for c in cells.values()):
            last_ratio = cells["dense"]["seconds"] / cells["sparse"]["seconds"]
            row += f"{last_ratio:>19.2f}"
        else:
            row += f"{'dense did not run':>19}" if "seconds" in cells["sparse"] else ""
        print(row + f"   ({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"ratio={last_ratio:.2f}" if last_ratio is not None else "ratio=0")


if __name__ == "__main__":
    main()
