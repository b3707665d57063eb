"""Training-step time of the Table-1 protocol's models (``benchmarks/_table.BUDGET``), eager and
with ``trainer.compile`` (the relational transformer's compiled layer stack).

One step = build the graph batch, forward, backward, AdamW, on a batch of 64 digits-size SIRENs
(2-16-16-1), one torch thread as in the protocol's cells. Sets the protocol's cost: the whole
Table 1 is about 300k such steps. Last line: ``ratio=`` eager / compiled step time of the
relational transformer. Run: ``python -m benchmarks.protocol_step``.
"""

from __future__ import annotations

import argparse

import torch
import yaml

from benchmarks._table import BUDGET
from benchmarks._timing import machine
from benchmarks.models import train_step_seconds
from nngraph.graph import ArchSpec

MODELS = ("dws", "relational_transformer")


def budget_kwargs(model: str) -> dict:
    """The ``model.kwargs`` overrides of the protocol's budget for ``model``, as values."""
    out = {}
    for item in BUDGET[model]:
        key, _, value = item.partition("=")
        if key.startswith("model.kwargs."):
            out[key.removeprefix("model.kwargs.")] = yaml.safe_load(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20, help="median of this many steps")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = ArchSpec.siren(hidden_dim=16)
    print(machine())
    print(f"{spec}, batch {args.batch}, median of {args.repeats} steps")
    times = {}
    for model in MODELS:
        kw = budget_kwargs(model)
        times[model, "eager"] = train_step_seconds(model, spec, args.batch, args.repeats, **kw)
        print(f"{model:<24} eager     {1000 * times[model, 'eager']:7.1f} ms/step", flush=True)
    rt = "relational_transformer"
    times[rt, "compiled"] = train_step_seconds(
        rt, spec, args.batch, args.repeats, compile_layers=True, **budget_kwargs(rt)
    )
    print(f"{rt:<24} compiled  {1000 * times[rt, 'compiled']:7.1f} ms/step")
    print(f"ratio={times[rt, 'eager'] / times[rt, 'compiled']:.2f}")


if __name__ == "__main__":
    main()
