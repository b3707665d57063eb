"""Input encoders shared by the graph models: random Fourier features of raw scalars, scalar
feature projections, and positional ids that keep hidden neurons of a layer exchangeable."""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn

from nngraph.graph.spec import ArchSpec

__all__ = [
    "FourierFeatures",
    "ProbeFeatures",
    "ScalarEncoder",
    "num_positions",
    "position_ids",
]


class FourierFeatures(nn.Module):
    """``x -> [cos(2π x B), sin(2π x B)]`` with a fixed Gaussian ``B`` (std ``sigma``): lets a
    network resolve small differences between raw weights (Tancik et al. 2020)."""

    def __init__(self, in_dim: int, num_frequencies: int, sigma: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.randn(in_dim, num_frequencies) * sigma)
        self.out_dim = 2 * num_frequencies

    def forward(self, x: Tensor) -> Tensor:
        proj = (2 * math.pi) * (x @ self.freqs)
        return torch.cat([proj.cos(), proj.sin()], dim=-1)


class ScalarEncoder(nn.Sequential):
    """Raw weights or biases ``[..., in_dim]`` -> ``[..., out_dim]``: Fourier features then a
    linear map, or just the linear map when ``fourier_dim`` is 0."""

    def __init__(self, in_dim: int, out_dim: int, fourier_dim: int = 0, sigma: float = 1.0):
        layers: list[nn.Module] = []
        if fourier_dim > 0:
            layers.append(FourierFeatures(in_dim, fourier_dim, sigma))
            in_dim = 2 * fourier_dim
        layers.append(nn.Linear(in_dim, out_dim))
        super().__init__(*layers)


def num_positions(spec: ArchSpec) -> int:
    """How many distinct positional ids :func:`position_ids` uses for ``spec``."""
    sizes = spec.layer_sizes
    return sizes[0] + (len(sizes) - 2) + sizes[-1]


def position_ids(spec: ArchSpec, device: torch.device | str = "cpu") -> Tensor:
    """``[N]`` ids: each input and output neuron its own, all hidden neurons of a layer one id per
    layer, so a relabeling within a hidden layer changes nothing a model can see. Depends only on
    depth and input/output sizes, so one embedding table serves every hidden width."""
    t = spec.templates_on(device)
    sizes = spec.layer_sizes
    last = len(sizes) - 1
    ids = t.layer + sizes[0] - 1  # hidden layer k -> n0 + k - 1
    ids = torch.where(t.layer == 0, t.node_local, ids)
    return torch.where(t.layer == last, sizes[0] + last - 1 + t.node_local, ids)


#: height and width of the probe images of CNNs
CNN_PROBE_SIZE = (8, 8)


def cnn_probe_side(spec: ArchSpec) -> int:
    """The side of a CNN's probe images: ``CNN_PROBE_SIZE``, doubled until every convolution of
    ``spec`` has its kernel inside the padded input and leaves at least one position."""
    side = CNN_PROBE_SIZE[0]
    while side <= 4096:
        size = side
        for layer in range(spec.n_layers):
            if spec.kind_of(layer) != "conv2d" or size < 1:
                break
            k, s, p = spec.kernel_of(layer), spec.stride_of(layer), spec.padding_of(layer)
            size = (size + 2 * p - k) // s + 1 if size + 2 * p >= k else 0
        if size >= 1:
            return side
        side *= 2
    raise ValueError(f"no probe image up to 4096x4096 passes the convolutions of {spec}; "
                     "set model.kwargs.probe_points=0")  # fmt: skip


class ProbeFeatures(torch.nn.Module):
    """What each neuron computes on ``k`` fixed probe inputs, as a node feature (the reference's
    probe features, Kofinas et al. 2024): inputs see the probe coordinates, hidden neurons their
    activations, outputs the network's values. A neuron's vector moves with it under relabeling,
    so models stay equivariant; it tells a model what the function does, which raw weights reveal
    only slowly on small datasets."""

    def __init__(self, spec: ArchSpec, k: int, out_dim: int, seed: int = 0) -> None:
        super().__init__()
        if spec.family not in ("mlp", "cnn"):
            raise ValueError(
                f"probe features are defined for the mlp and cnn families, not {spec.family!r}; "
                "set model.kwargs.probe_points=0"
            )
        gen = torch.Generator().manual_seed(seed)
        # CNNs see k random probe images (any size works after the global pooling)
        side = cnn_probe_side(spec) if spec.family == "cnn" else 0
        shape = (spec.in_dim,) if spec.family == "mlp" else (spec.in_dim, side, side)
        self.register_buffer("points", torch.rand(k, *shape, generator=gen) * 2 - 1)
        self.proj = nn.Linear(k, out_dim)

    def forward(self, x: Tensor, e: Tensor, spec: ArchSpec) -> Tensor:
        """Raw ``x [B, N, 1]``, ``e [B, E, F_e]`` -> ``[B, N, out_dim]``."""
        from nngraph.graph.activations import apply_activation

        if spec.family == "cnn":
            return self.proj(self._cnn(x, e, spec))

        b, sizes = x.shape[0], spec.layer_sizes
        t = spec.templates_on(x.device)
        a = self.points.T.unsqueeze(0).expand(b, -1, -1).to(x.dtype)  # [B, n0, K]
        outs, offset = [a], 0
        for layer, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            w = e[:, offset : offset + n_in * n_out, 0].view(b, n_out, n_in)
            offset += n_in * n_out
            bias = x[:, t.layer_start[layer + 1] : t.layer_start[layer + 2], 0]
            a = torch.baddbmm(bias.unsqueeze(-1), w, a)
            if layer < len(sizes) - 2:
                a = apply_activation(a, spec.activation, spec.w0)
            outs.append(a)
        return self.proj(torch.cat(outs, dim=1))

    def _cnn(self, x: Tensor, e: Tensor, spec: ArchSpec) -> Tensor:
        """``[B, N, k]``: input channels' probe means, every channel's and neuron's spatially
        averaged activation, the output logits."""
        from nngraph.graph.convert import params_from_features
        from nngraph.zoo.functional import cnn_forward

        params = params_from_features(x, e, spec)
        hidden: list[Tensor] = []
        logits = cnn_forward(params, self.points.to(x.dtype), spec, hidden=hidden)
        inputs = self.points.mean((2, 3)).T.unsqueeze(0).expand(x.shape[0], -1, -1)
        layers = [h.transpose(1, 2) for h in (*hidden, logits)]  # [B, n_l, k] each
        return torch.cat([inputs.to(x.dtype), *layers], dim=1)
