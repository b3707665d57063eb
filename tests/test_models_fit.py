"""A model that cannot memorise a small training set is broken, not slow: tiny ``dws`` and a tiny
probe-free relational transformer (the paper's models, raw weights only) must fit 64 fitted digit
INRs to at least 90% training accuracy within a few hundred steps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nngraph.data import load_source
from nngraph.data.normalize import layer_stats, normalize_graph
from nngraph.graph import ArchSpec, to_graph_batch
from nngraph.inr import fit_inrs
from nngraph.models import MLPHead, build_model

TINY = {
    "dws": {"n_layers": 2, "hidden": 16, "out_dim": 16},
    "relational_transformer": {
        "n_layers": 2, "d_node": 16, "d_edge": 8, "d_attn": 16, "d_node_hidden": 32,
        "d_edge_hidden": 16, "heads": 2, "fourier_dim": 16, "probe_points": 0,
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def small_set() -> tuple[torch.Tensor, torch.Tensor, ArchSpec]:
    """64 digits (balanced over the 10 classes) as 2-8-8-1 SIRENs, DWSNets' init, fitted briefly."""
    source = load_source("digits")
    rows = torch.cat([torch.nonzero(source.labels == c)[:7, 0] for c in range(10)])[:64]
    spec = ArchSpec.siren(hidden_dim=8)
    fitted = fit_inrs(
        source.images[rows], spec, steps=300, lr=2e-3, target_psnr=30.0, progress=False
    )
    return fitted.params, source.labels[rows], spec


@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_model_memorises_64_training_inrs(name, small_set):
    params, labels, spec = small_set
    torch.manual_seed(0)
    encoder = build_model(name, spec, **TINY[name])
    head = MLPHead(encoder.out_dim, 10, hidden=(64,))
    weights = [*encoder.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(weights, lr=3e-3, weight_decay=0.0)
    stats = layer_stats(params, spec)
    batch = normalize_graph(to_graph_batch(params, spec, y=labels), stats)
    accuracy = 0.0
    for step in range(400):
        logits = head(encoder(batch).graph)
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 24:
            accuracy = (logits.argmax(1) == labels).float().mean().item()
            if accuracy >= 0.95:
                break
    assert accuracy >= 0.9, f"{name} fits only {accuracy:.0%} of 64 training INRs"
