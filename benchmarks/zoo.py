"""CNN-steps per second training the zoo's CNNs on digits: batched vs one model at a time.

Batched: ``nngraph.zoo.train.train_zoo`` (all models in one grouped-convolution forward, one
backward and one per-row AdamW step). Naive: the usual way, one ``nn.Sequential`` and one
``torch.optim.AdamW`` per model, in a loop, with the same batch size and steps. Both train the
default zoo CNN; the ratio is CNN-steps per second. Run: ``python -m benchmarks.zoo``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks._inputs import positive_int
from benchmarks._timing import machine
from nngraph.data import load_source
from nngraph.graph import ArchSpec, from_params, to_module
from nngraph.train.allocator import keep_freed_memory
from nngraph.zoo.functional import cnn_init
from nngraph.zoo.train import sample_hyperparameters, train_zoo

SPEC = ArchSpec.cnn((1, 8, 16, 16), (10,), 3, stride=[1, 2, 1])  # configs/zoo/default.yaml


def naive_steps_per_second(
    images: torch.Tensor, labels: torch.Tensor, models: int, steps: int, batch: int
) -> float:
    hyper = sample_hyperparameters(models, seed=1)
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(0)
    for i in range(models):
        init = cnn_init(SPEC, hyper["init_scale"][i : i + 1], generator=gen)[0]
        net = to_module(from_params(init, SPEC))
        opt = torch.optim.AdamW(net.parameters(), lr=float(hyper["lr"][i]),
                                weight_decay=float(hyper["weight_decay"][i]))  # fmt: skip
        for _ in range(steps):
            rows = torch.randint(0, len(images), (batch,), generator=gen)
            loss = F.cross_entropy(net(images[rows]), labels[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return models * steps / (time.perf_counter() - start)


def batched_steps_per_second(
    images: torch.Tensor, labels: torch.Tensor, models: int, steps: int, batch: int
) -> float:
    hyper = sample_hyperparameters(models, seed=1)
    # every run exactly ``steps`` long: one epoch of ceil(N / batch) steps, N = steps * batch
    hyper["epochs"] = torch.ones(models, dtype=torch.long)
    n = steps * batch
    reps = -(-n // len(images))
    x, y = images.repeat(reps, 1, 1, 1)[:n], labels.repeat(reps)[:n]
    result = train_zoo(x, y, SPEC, hyper, batch_size=batch, checkpoints=(1.0,), progress=False)
    return models * steps / result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", type=positive_int, default=200, help="CNNs trained by the batched path"
    )
    parser.add_argument(
        "--naive-models", type=positive_int, default=10, help="CNNs trained one at a time"
    )
    parser.add_argument("--steps", type=positive_int, default=40)
    parser.add_argument("--batch", type=positive_int, default=32)
    parser.add_argument("--repeats", type=positive_int, default=3, help="best of this many runs")
    args = parser.parse_args()
    keep_freed_memory()  # as python -m nngraph.zoo does; the same process serves both paths

    source = load_source("digits")
    train = ~source.is_test
    images = source.images[train].permute(0, 3, 1, 2).contiguous()
    labels = source.labels[train]
    batched_runs, naive_runs = [], []
    for _ in range(args.repeats):  # alternate the two paths so machine noise hits both alike
        batched_runs.append(
            batched_steps_per_second(images, labels, args.models, args.steps, args.batch)
        )
        naive_runs.append(
            naive_steps_per_second(images, labels, args.naive_models, args.steps, args.batch)
        )
    batched, naive = max(batched_runs), max(naive_runs)
    print(machine())
    print(f"{SPEC}, digits 8x8, batch {args.batch}, {args.steps} AdamW steps per model")
    medians = statistics.median(batched_runs), statistics.median(naive_runs)
    print(f"best of {args.repeats} alternating runs (medians: batched {medians[0]:,.0f}, "
          f"one at a time {medians[1]:,.0f})")  # fmt: skip
    print(f"batched ({args.models} CNNs at once):     {batched:>10,.0f} CNN-steps/s")
    print(f"one CNN at a time ({args.naive_models} CNNs):   {naive:>10,.0f} CNN-steps/s")
    print(f"ratio={batched / naive:.1f}")


if __name__ == "__main__":
    main()
