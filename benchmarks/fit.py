"""INR-steps per second fitting 2-32-32-1 SIRENs to 28x28 images: batched vs one at a time.

Batched: ``nngraph.inr.fit_inrs`` (every INR in one batched forward/backward and one Adam step).
Naive: the reference way, one ``Siren`` module and one ``torch.optim.Adam`` per INR, in a loop.
Also the batched path's achieved matmul GFLOP/s next to this machine's fp32 matmul peak (a large
square ``torch.mm``), measured in the same run. Run: ``python -m benchmarks.fit``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks._timing import machine
from nngraph.data import load_source
from nngraph.graph import ArchSpec
from nngraph.inr import Siren, coordinate_grid, fit_inrs
from nngraph.inr.fit import auto_batch_size, auto_device


def images_28(n: int) -> torch.Tensor:
    """Digits upsampled to 28x28 (MNIST's size), offline."""
    digits = load_source("digits").images[:n].permute(0, 3, 1, 2)
    return (
        F.interpolate(digits, size=(28, 28), mode="bilinear", align_corners=False)
        .permute(0, 2, 3, 1)
        .clamp(0, 1)
    )


def matmul_flops_per_step(spec: ArchSpec, pixels: int) -> int:
    """Forward, weight-gradient and input-gradient matmuls of one INR-step (no elementwise)."""
    pairs = list(zip(spec.layer_sizes[:-1], spec.layer_sizes[1:]))
    forward = sum(2 * pixels * a * b for a, b in pairs)
    input_grads = sum(2 * pixels * a * b for a, b in pairs[1:])
    return 2 * forward + input_grads


def peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def sine_seconds_per_element(repeats: int = 50) -> float:
    """Measured cost of one float32 sin (or cos), on a cache-sized activation tensor."""
    x, out = torch.randn(10, 784, 32) * 3, torch.empty(10, 784, 32)
    torch.sin(x, out=out)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.sin(x, out=out)
    return (time.perf_counter() - start) / repeats / x.numel()


def naive_inr_steps_per_second(images: torch.Tensor, steps: int, lr: float) -> float:
    coords = coordinate_grid(28, 28)
    start = time.perf_counter()
    for image in images:
        net = Siren()
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        target = image.reshape(-1, 1)
        for _ in range(steps):
            loss = ((net(coords) - target) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return len(images) * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inrs", type=int, default=256, help="INRs fitted by the batched path")
    parser.add_argument("--naive-inrs", type=int, default=16, help="INRs fitted one at a time")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5, help="best of this many runs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="default: automatic")
    args = parser.parse_args()

    spec, lr = ArchSpec.siren(), 5e-4
    images = images_28(max(args.inrs, args.naive_inrs))
    fit_inrs(images[:8], spec, steps=2, target_psnr=None, progress=False, device=args.device)
    batch_size = args.batch_size or auto_batch_size(spec, 28 * 28, auto_device(args.device))
    batched_runs, naive_runs = [], []
    for _ in range(args.repeats):  # alternate the two paths so machine noise hits both alike
        result = fit_inrs(
            images[: args.inrs], spec, steps=args.steps, lr=lr, target_psnr=None,
            batch_size=batch_size, progress=False, device=args.device,
        )  # fmt: skip
        batched_runs.append(args.inrs * args.steps / result.seconds)
        naive_runs.append(naive_inr_steps_per_second(images[: args.naive_inrs], args.steps, lr))
    # best of the runs for each path: noise from other work on the machine only ever slows a run
    batched, naive = max(batched_runs), max(naive_runs)
    flops = matmul_flops_per_step(spec, 28 * 28)
    achieved = batched * flops / 1e9
    peak = peak_gflops()
    # a floor on the time of one INR-step: its matmuls at the peak, plus a sin and a cos for every
    # hidden activation at the measured elementwise speed (the two costs that cannot be removed)
    transcendental = 2 * 28 * 28 * sum(spec.layer_sizes[1:-1])
    floor = flops / (peak * 1e9) + transcendental * sine_seconds_per_element()

    print(machine())
    print(f"{spec}, 28x28 images ({28 * 28} pixels), {args.steps} Adam steps, no early stop")
    medians = statistics.median(batched_runs), statistics.median(naive_runs)
    print(
        f"best of {args.repeats} alternating runs (medians: batched {medians[0]:,.0f}, "
        f"one at a time {medians[1]:,.0f})"
    )
    print(f"batched ({args.inrs} INRs, {batch_size} at once):  {batched:>10,.0f} INR-steps/s")
    print(f"one INR at a time ({args.naive_inrs} INRs):        {naive:>10,.0f} INR-steps/s")
    print(
        f"batched matmul throughput: {achieved:.1f} GFLOP/s of a measured fp32 matmul peak "
        f"{peak:.1f} GFLOP/s ({100 * achieved / peak:.0f}%; {flops / 1e6:.2f} MFLOP per INR-step)"
    )
    print(
        f"bound from matmul peak + measured sin/cos speed: {1 / floor:,.0f} INR-steps/s; "
        f"the batched path reaches {100 * batched * floor:.0f}% of it"
    )
    print(f"ratio={batched / naive:.1f}")


if __name__ == "__main__":
    main()
