"""INR-steps per second fitting 3-32-32-1 SDF SIRENs to procedural shapes: batched vs one at a time.

Batched: ``nngraph.inr.fit_sdf.fit_sdf_inrs`` (every INR on its own points, one batched
forward/backward with the hand-written SIREN gradient, one Adam step). Naive: the usual way, one
``MLP`` module and one ``torch.optim.Adam`` per shape, in a loop, same points, steps and lr. Both
fit each step on a random ``--points-per-step`` of a shape's ``--points`` (the default fit).
No early stop on either side. Run: ``python -m benchmarks.fit_sdf``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks._timing import machine
from nngraph.data.shapes import load_procedural_shapes
from nngraph.graph import ArchSpec
from nngraph.inr.fit_sdf import fit_sdf_inrs
from nngraph.inr.siren import MLP

SPEC = ArchSpec((3, 32, 32, 1), activation="sine", w0=30.0, out_offset=0.0)  # data=shapes


def naive_inr_steps_per_second(
    points: torch.Tensor, sdf: torch.Tensor, steps: int, per_step: int
) -> float:
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    for p, d in zip(points, sdf):
        net = MLP(SPEC)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        target = d.unsqueeze(-1)
        for _ in range(steps):
            index = torch.randperm(len(p), generator=generator)[:per_step]
            loss = ((net(p[index]) - target[index]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return len(points) * steps / (time.perf_counter() - start)


def batched_inr_steps_per_second(
    points: torch.Tensor, sdf: torch.Tensor, steps: int, per_step: int
) -> float:
    result = fit_sdf_inrs(points, sdf, SPEC, steps=steps, lr=1e-3, target_sign=None,
                          progress=False, points_per_step=per_step)  # fmt: skip
    return len(points) * steps / result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=int, default=96, help="INRs fitted by the batched path")
    parser.add_argument("--naive-shapes", type=int, default=6, help="INRs fitted one at a time")
    parser.add_argument("--points", type=int, default=2048, help="samples per shape")
    parser.add_argument("--points-per-step", type=int, default=512, help="fitted at each step")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()

    source = load_procedural_shapes(items_per_class=-(-args.shapes // 12), seed=0)
    points, sdf = source.sample(torch.arange(args.shapes), args.points, seed=0)
    batched_runs, naive_runs = [], []
    few, per_step = slice(0, args.naive_shapes), args.points_per_step
    for _ in range(args.repeats):  # alternating, so machine noise hits both alike
        batched_runs.append(batched_inr_steps_per_second(points, sdf, args.steps, per_step))
        naive_runs.append(naive_inr_steps_per_second(points[few], sdf[few], args.steps, per_step))
    batched, naive = max(batched_runs), max(naive_runs)
    print(machine())
    print(f"{SPEC}, {args.points_per_step} of {args.points} points per shape a step, "
          f"{args.steps} Adam steps per INR")  # fmt: skip
    print(f"medians: batched {statistics.median(batched_runs):,.0f}, one at a time "
          f"{statistics.median(naive_runs):,.0f} INR-steps/s")  # fmt: skip
    print(f"batched ({args.shapes} INRs):        {batched:>10,.0f} INR-steps/s")
    print(f"one INR at a time ({args.naive_shapes} INRs): {naive:>10,.0f} INR-steps/s")
    print(f"ratio={batched / naive:.1f}")


if __name__ == "__main__":
    main()
