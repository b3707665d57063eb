"""Many CNNs of one spec evaluated at once from flat parameter rows: each convolution is one
grouped convolution (one group per network), each dense layer one batched matmul.

This is what lets ``nngraph.zoo`` train hundreds of small CNNs in the time of a few: a Python loop
over models pays the per-call overhead of every tiny layer once per model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nngraph.graph.activations import apply_activation
from nngraph.graph.spec import ArchSpec

__all__ = ["cnn_forward", "cnn_init"]


def _layers(params: Tensor, spec: ArchSpec) -> list[tuple[Tensor, Tensor]]:
    """``(weight [M, *shape], bias [M, c_out])`` per layer: views into ``params [M, P]``."""
    m, offset, out = params.shape[0], 0, []
    shapes = spec.param_shapes
    for (_, w_shape), (_, b_shape) in zip(shapes[0::2], shapes[1::2], strict=True):
        w_size, b_size = int(torch.Size(w_shape).numel()), b_shape[0]
        weight = params[:, offset : offset + w_size].view(m, *w_shape)
        bias = params[:, offset + w_size : offset + w_size + b_size]
        out.append((weight, bias))
        offset += w_size + b_size
    return out


def cnn_forward(
    params: Tensor, images: Tensor, spec: ArchSpec, *, hidden: list[Tensor] | None = None
) -> Tensor:
    """Logits ``[M, B, out]`` of ``M`` CNNs (``params [M, P]``, the spec's canonical order) on
    ``images``: ``[B, C, H, W]`` shared by all, or ``[M, B, C, H, W]``, one batch per network.
    ``hidden``, when given, receives each hidden layer's output ``[M, B, n_l]`` after its
    activation (a convolution's channels averaged over space): what each neuron computes."""
    if spec.family != "cnn":
        raise ValueError(f"cnn_forward evaluates family 'cnn' specs, got {spec}")
    if params.dim() != 2 or params.shape[1] != spec.num_params:
        raise ValueError(
            f"params must have shape [M, {spec.num_params}] for {spec}, got {tuple(params.shape)}"
        )
    m = params.shape[0]
    if images.dim() == 4:
        images = images.unsqueeze(0).expand(m, *images.shape)
    if images.dim() != 5 or images.shape[0] != m or images.shape[2] != spec.in_dim:
        raise ValueError(
            f"images must be [B, {spec.in_dim}, H, W] or [{m}, B, {spec.in_dim}, H, W], got "
            f"{tuple(images.shape)}"
        )
    b = images.shape[1]
    h = images.transpose(0, 1).reshape(b, m * spec.in_dim, *images.shape[3:])
    last = spec.n_layers - 1
    for layer, (weight, bias) in enumerate(_layers(params, spec)):
        if spec.kind_of(layer) == "conv2d":
            c_out = weight.shape[1]
            h = F.conv2d(
                h, weight.reshape(m * c_out, *weight.shape[2:]), bias.reshape(-1),
                stride=spec.stride_of(layer), padding=spec.padding_of(layer), groups=m,
            )  # fmt: skip
        else:
            if h.dim() == 4:  # the global pooling: [B, M*C, H, W] -> [M, B, C]
                pooled = h.mean((2, 3)) if spec.global_pool == "avg" else h.amax((2, 3))
                h = pooled.view(b, m, -1).transpose(0, 1)
            h = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
        if layer < last:
            h = apply_activation(h, spec.activation_of(layer))
            if hidden is not None:
                per_net = h.mean((2, 3)).view(b, m, -1).transpose(0, 1) if h.dim() == 4 else h
                hidden.append(per_net)
    return h


def cnn_init(spec: ArchSpec, scale: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Flat parameters ``[M, P]`` of ``M = len(scale)`` CNNs, each drawn as PyTorch initialises
    ``Conv2d``/``Linear`` (weights and biases ``U(±1/sqrt(fan_in))``) times its own ``scale``."""
    rows = []
    for (_, w_shape), (_, b_shape) in zip(
        spec.param_shapes[0::2], spec.param_shapes[1::2], strict=True
    ):
        fan_in = int(torch.Size(w_shape[1:]).numel())
        bound = fan_in**-0.5
        for shape in (w_shape, b_shape):
            size = int(torch.Size(shape).numel())
            u = torch.rand(len(scale), size, generator=generator) * 2 - 1
            rows.append(u * bound)
    return torch.cat(rows, dim=1) * scale.view(-1, 1)
