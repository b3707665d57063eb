"""Test helpers: a spread of architectures and randomly parameterised networks of them."""

from __future__ import annotations

import torch

from nngraph.data.sources import ImageSource
from nngraph.graph import ArchSpec
from nngraph.inr import MLP

SPECS = [
    ArchSpec.siren(),  # the FMNIST / MNIST INR: 2-32-32-1
    ArchSpec.siren(in_dim=3, hidden_dim=16, n_layers=5, out_dim=1, out_offset=0.0),  # SDF-style
    ArchSpec((2, 8, 5, 3), activation="sine", w0=10.0),  # uneven widths, RGB out
    ArchSpec.mlp((4, 16, 16, 2), activation="relu"),
    ArchSpec.mlp((3, 7, 1), activation="tanh"),
    ArchSpec.mlp((5, 2), activation="relu"),  # no hidden layer at all
]


def spec_id(spec: ArchSpec) -> str:
    return f"{spec.activation}-" + "-".join(map(str, spec.layer_sizes))


def random_network(spec: ArchSpec, seed: int = 0) -> MLP:
    """A network of ``spec`` with every weight and bias random and non-zero, at the scale of a
    fitted INR (SIREN-init scale for sine layers, 1/sqrt(fan_in) otherwise), outputs O(1)."""
    torch.manual_seed(seed)
    module = MLP(spec)
    last = spec.n_layers - 1
    with torch.no_grad():
        for i, layer in enumerate(module.seq):
            fan_in = layer.in_features
            if spec.is_siren and i < last:
                std = 1.0 / fan_in if i == 0 else (2.0 / fan_in) ** 0.5 / spec.w0
                bias_std = 1.0 / spec.w0  # a phase of about one radian
            else:
                std, bias_std = fan_in**-0.5, 0.1
            layer.weight.copy_(torch.randn_like(layer.weight) * std)
            layer.bias.copy_(torch.randn_like(layer.bias) * bias_std)
    return module.eval()


def random_params(spec: ArchSpec, batch: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scale = 1.0 / spec.w0 if spec.is_siren else 1.0
    return torch.randn(batch, spec.num_params, generator=gen) * scale


def tiny_source(n: int = 240) -> ImageSource:
    """Three classes of 8x8 images a CNN can tell apart: a bright row, column or diagonal."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 3
    images = torch.rand(n, 8, 8, 1, generator=gen) * 0.3
    for i, c in enumerate(labels.tolist()):
        k = int(torch.randint(0, 8, (1,), generator=gen))
        if c == 0:
            images[i, k, :, 0] += 0.7
        elif c == 1:
            images[i, :, k, 0] += 0.7
        else:
            images[i, range(8), range(8), 0] += 0.7
    is_test = (torch.arange(n) // 3) % 3 == 0  # every class in both splits
    return ImageSource("tiny", images, labels, is_test, ["row", "col", "diag"])
