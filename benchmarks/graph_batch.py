"""Graphs per second building a batch of 256 FMNIST-size SIREN graphs (2-32-32-1).

Fast path: ``to_graph_batch`` gathers node and edge features from ``params[B, P]`` with the spec's
templates. Naive paths: per-sample ``Data`` objects collated by ``Batch.from_data_list``, as PyG
datasets of neural graphs do every step; timed both with the per-sample ``Data`` built inside the
step and with it prebuilt (collation alone). Run: ``python -m benchmarks.graph_batch``.
"""

from __future__ import annotations

import argparse

import torch
from torch_geometric.data import Batch

from benchmarks._timing import machine, median_seconds
from nngraph.graph import ArchSpec, from_params, to_graph_batch
from nngraph.graph.convert import _STRUCTURES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    spec = ArchSpec.siren()  # 2-32-32-1: 67 nodes, 1,120 edges, 1,185 parameters
    params = torch.randn(args.batch, spec.num_params) / spec.w0
    prebuilt = [from_params(p, spec, validate=False) for p in params]

    def gather() -> Batch:
        return to_graph_batch(params, spec)

    def gather_cold() -> Batch:
        _STRUCTURES.clear()  # as for the first batch of a new size
        return to_graph_batch(params, spec)

    def per_sample_and_collate() -> Batch:
        return Batch.from_data_list([from_params(p, spec, validate=False) for p in params])

    def collate_only() -> Batch:
        return Batch.from_data_list(prebuilt)

    fast = median_seconds(gather, args.repeats)
    cold = median_seconds(gather_cold, args.repeats)
    naive_full = median_seconds(per_sample_and_collate, max(5, args.repeats // 3))
    naive_collate = median_seconds(collate_only, max(5, args.repeats // 3))
    b = args.batch

    def row(name: str, seconds: float, note: str = "") -> None:
        print(f"{name:<42} {b / seconds:>10,.0f} graphs/s  {seconds * 1e3:8.3f} ms  {note}")

    print(machine())
    print(f"batch of {b} graphs of {spec}")
    row("gather (to_graph_batch)", fast)
    row("gather, batch structure not cached", cold, "(first batch of a new size)")
    row("per-sample Data + Batch.from_data_list", naive_full, f"x{naive_full / fast:.1f} slower")
    row(
        "Batch.from_data_list of prebuilt Data",
        naive_collate,
        f"x{naive_collate / fast:.1f} slower",
    )
    # The conservative ratio: against collation alone, the cheapest version of the naive path.
    print(f"ratio={naive_collate / fast:.1f}")


if __name__ == "__main__":
    main()
