"""Our relational transformer against the reference one (mkofinas/neural-graphs), side by side.

Same batch (64 FMNIST-size SIREN graphs, 2-32-32-1), same sizes (the reference's INR config: node
64, edge 32, attention 128, 4 layers, 8 heads, Fourier features 128), one training step each
(forward, backward, AdamW), timed alternately. Nothing of the reference is part of nngraph: pass
the path of a checkout (``git clone https://github.com/mkofinas/neural-graphs``); it needs
``einops`` (``pip install einops``); its ``rff`` import (random-fourier-features-pytorch, which
would pull torchvision) is served by a stand-in module with the same Gaussian encoding.
Last line: ``ratio=`` ours/reference samples per second (dense mode, the reference's semantics).
Run: ``python -m benchmarks.reference_rt --path ../neural-graphs``; prints a skip line without it.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import math
import statistics
import sys
import time
import types
from pathlib import Path

import torch
from torch import nn

from benchmarks._timing import machine
from nngraph.graph import ArchSpec, to_graph_batch
from nngraph.models import MLPHead, build_model
from nngraph.train.allocator import keep_freed_memory


class _GaussianEncoding(nn.Module):
    """Stand-in for ``rff.layers.GaussianEncoding``: ``[cos(2π v Bᵀ), sin(2π v Bᵀ)]``."""

    def __init__(self, sigma: float, input_size: int, encoded_size: int) -> None:
        super().__init__()
        self.register_buffer("b", torch.randn(encoded_size, input_size) * sigma)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        vp = 2 * math.pi * v @ self.b.T
        return torch.cat([vp.cos(), vp.sin()], dim=-1)


def load_reference(path: Path) -> type[nn.Module]:
    rff = types.ModuleType("rff")
    rff.layers = types.ModuleType("rff.layers")
    rff.layers.GaussianEncoding = _GaussianEncoding
    rff.layers.PositionalEncoding = nn.Identity
    sys.modules.setdefault("rff", rff)
    sys.modules.setdefault("rff.layers", rff.layers)
    sys.path.insert(0, str(path))
    return importlib.import_module("nn.relational_transformer").RelationalTransformer


def reference_model(cls: type[nn.Module], spec: ArchSpec, classes: int) -> nn.Module:
    constructor = {
        "_target_": "nn.graph_constructor.GraphConstructor",
        "_recursive_": False,
        "_convert_": "all",
        "d_in": 1,
        "d_edge_in": 1,
        "zero_out_bias": False,
        "zero_out_weights": False,
        "sin_emb": True,
        "sin_emb_dim": 128,
        "use_pos_embed": True,
        "input_layers": 1,
        "inp_factor": 1,
        "num_probe_features": 0,
        "inr_model": None,
        "stats": None,
    }
    return cls(
        d_node=64,
        d_edge=32,
        d_attn_hid=128,
        d_node_hid=128,
        d_edge_hid=64,
        d_out_hid=128,
        d_out=classes,
        n_layers=4,
        n_heads=8,
        layer_layout=list(spec.layer_sizes),
        graph_constructor=constructor,
        use_cls_token=False,
        pooling_method="cat",
        pooling_layer_idx="last",
    )


def reference_inputs(params: torch.Tensor, spec: ArchSpec) -> tuple[tuple, tuple]:
    """Flat parameters -> the reference's ``(weights [B, in, out, 1], biases [B, out, 1])``."""
    weights, biases, offset = [], [], 0
    b = params.shape[0]
    for n_in, n_out in itertools.pairwise(spec.layer_sizes):
        w = params[:, offset : offset + n_in * n_out].view(b, n_out, n_in)
        offset += n_in * n_out
        weights.append(w.transpose(1, 2).unsqueeze(-1).contiguous())
        biases.append(params[:, offset : offset + n_out].unsqueeze(-1))
        offset += n_out
    return tuple(weights), tuple(biases)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--path", type=Path, help="checkout of mkofinas/neural-graphs")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    keep_freed_memory()  # as train.py does (see nngraph.train.allocator)
    if args.path is None or not (args.path / "nn" / "relational_transformer.py").exists():
        print(f"skipped: no neural-graphs checkout at {args.path} (pass --path)")
        return
    print(machine())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device: {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}")
    spec = ArchSpec.siren()
    torch.manual_seed(0)
    params = torch.randn(args.batch, spec.num_params, device=device) * 0.1
    y = torch.randint(0, 10, (args.batch,), device=device)

    ref = reference_model(load_reference(args.path), spec, 10).to(device)
    steps = {}
    for mode in ("dense", "sparse"):
        ours = build_model("relational_transformer", spec, mode=mode).to(device)
        head = MLPHead(ours.out_dim, 10).to(device)
        params_ = [*ours.parameters(), *head.parameters()]
        steps[f"nngraph ({mode})"] = (
            lambda ours=ours, head=head: head(ours(to_graph_batch(params, spec)).graph),
            torch.optim.AdamW(params_, lr=1e-3),
            sum(p.numel() for p in params_),
        )
    steps["reference"] = (
        lambda: ref(reference_inputs(params, spec)),
        torch.optim.AdamW(ref.parameters(), lr=1e-3),
        sum(p.numel() for p in ref.parameters()),
    )

    def run(name: str) -> float:
        forward, opt, _ = steps[name]
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(forward(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for name in steps:  # warm up (the reference's TorchScript compiles here)
        for _ in range(3):
            run(name)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):  # alternate, so machine noise hits all alike
        for name in steps:
            times[name].append(run(name))
    print(f"training step, batch {args.batch} of {spec}")
    print(f"{'model':<20}{'params':>10}{'ms/step':>10}{'samples/s':>12}")
    for name, (_, _, n_params) in steps.items():
        sec = statistics.median(times[name])
        print(f"{name:<20}{n_params:>10,}{sec * 1e3:>10.1f}{args.batch / sec:>12.1f}")
    ref_sec = statistics.median(times["reference"])
    sparse = ref_sec / statistics.median(times["nngraph (sparse)"])
    print(f"sparse mode: {sparse:.2f}x the reference's samples/s")
    print(f"ratio={ref_sec / statistics.median(times['nngraph (dense)']):.2f}")


if __name__ == "__main__":
    main()
