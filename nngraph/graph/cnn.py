"""The "cnn" architecture family: 2-D convolutions, a global pooling, dense layers.

As in neural graphs (Kofinas et al., ICLR 2024): channels are nodes, the ``k×k`` kernel joining
input channel ``j`` to output channel ``i`` is one edge whose feature is that kernel flattened
(``k²`` values), biases are node features. After the global pooling the last convolution's
channels are the first dense layer's inputs, so the dense neurons follow them in the graph. A
dense weight is a 1×1 kernel: it sits at the centre of the edge's ``K×K`` vector (``K`` the
largest kernel), whose other entries have no parameter (they read as 0).

Module layout: ``nn.Sequential`` of ``Conv2d``, activation, ..., ``AdaptiveAvgPool2d(1)`` (or
``AdaptiveMaxPool2d(1)``), ``Flatten``, ``Linear``, activation, ..., ``Linear``; the state dict is
that Sequential's (``0.weight``, ``0.bias``, ``2.weight``, ...).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nngraph.graph.layered import layered_templates
from nngraph.graph.mlp import (
    ACTIVATION_MODULES,
    SPATIAL,
    activation_module,
    check_default_activation,
)
from nngraph.graph.spec import ArchSpec, GraphTemplates, register_family

__all__ = ["CNNFamily", "module_keys"]

_POOLS = {nn.AdaptiveAvgPool2d: "avg", nn.AdaptiveMaxPool2d: "max"}


def module_keys(spec: ArchSpec) -> list[int]:
    """Index in the Sequential of each weight layer (activations, pooling and flatten between)."""
    keys, pos = [], 0
    for layer in range(spec.n_layers):
        keys.append(pos)
        pos += 2  # the layer and its activation
        if spec.kind_of(layer) == "conv2d" and spec.kind_of(layer + 1) == "linear":
            pos += 2  # pooling, flatten (the activation of the last conv counted above)
    return keys


def _check_cnn(spec: ArchSpec) -> None:
    if not spec.has_convolutions or spec.kind_of(spec.n_layers - 1) != "linear":
        raise ValueError(
            f"{spec} is not a CNN: family 'cnn' needs at least one conv2d layer followed by dense "
            "layers (build it with ArchSpec.cnn)"
        )
    if spec.is_siren or "sine" in spec.activation_names:
        raise ValueError("family 'cnn' does not take the sine activation (SIRENs are 'mlp')")


class CNNFamily:
    """CNNs of 2-D convolutions, a global pooling and dense layers; registered as ``"cnn"``."""

    name = "cnn"

    def param_shapes(self, spec: ArchSpec) -> list[tuple[str, tuple[int, ...]]]:
        _check_cnn(spec)
        shapes: list[tuple[str, tuple[int, ...]]] = []
        sizes = spec.layer_sizes
        for layer, key in enumerate(module_keys(spec)):
            c_in, c_out, k = sizes[layer], sizes[layer + 1], spec.kernel_of(layer)
            shape = (c_out, c_in, k, k) if spec.kind_of(layer) == "conv2d" else (c_out, c_in)
            shapes += [(f"{key}.weight", shape), (f"{key}.bias", (c_out,))]
        return shapes

    def templates(self, spec: ArchSpec) -> GraphTemplates:
        _check_cnn(spec)
        return layered_templates(spec.layer_sizes, spec.kernel_sizes)

    # ---- state dicts --------------------------------------------------------------------------
    def spec_from_state_dict(self, state_dict: dict[str, Tensor]) -> ArchSpec:
        raise ValueError(
            "a CNN's stride, padding, pooling and activation cannot be read from its state dict; "
            "pass spec=ArchSpec.cnn(...)"
        )

    def state_dict_to_params(self, state_dict: dict[str, Tensor], spec: ArchSpec) -> Tensor:
        expected = self.param_shapes(spec)
        want = {key for key, _ in expected}
        extra = sorted(set(state_dict) - want)
        if extra:
            raise ValueError(f"unexpected key {extra[0]!r} for {spec}; expected {sorted(want)}")
        flat = []
        for key, shape in expected:
            if key not in state_dict:
                raise ValueError(f"missing key {key!r} for {spec}")
            value = state_dict[key]
            if not isinstance(value, Tensor) or not value.is_floating_point():
                kind = value.dtype if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"{key} must be a floating-point tensor, got {kind}")
            if tuple(value.shape) != shape:
                raise ValueError(f"{key} has shape {tuple(value.shape)}; {spec} expects {shape}")
            flat.append(value.detach().reshape(-1))
        return torch.cat(flat)

    # ---- modules ------------------------------------------------------------------------------
    def spec_from_module(self, module: nn.Module) -> ArchSpec | None:
        """Read an ``nn.Sequential`` of Conv2d/activation layers, a global pooling, Flatten and
        Linear/activation layers; ``None`` for a module with no convolution or pooling layer."""
        if not isinstance(module, nn.Sequential) or not any(isinstance(c, SPATIAL) for c in module):
            return None
        return _read_sequential(module)

    def build_module(self, spec: ArchSpec) -> nn.Module:
        _check_cnn(spec)
        layers: list[nn.Module] = []
        sizes = spec.layer_sizes
        for i in range(spec.n_layers):
            c_in, c_out = sizes[i], sizes[i + 1]
            if spec.kind_of(i) == "conv2d":
                stride, pad = spec.stride_of(i), spec.padding_of(i)
                layers.append(nn.Conv2d(c_in, c_out, spec.kernel_of(i), stride=stride, padding=pad))
            else:
                layers.append(nn.Linear(c_in, c_out))
            if i < spec.n_layers - 1:
                layers.append(activation_module(spec.activation_of(i)))
                if spec.kind_of(i) == "conv2d" and spec.kind_of(i + 1) == "linear":
                    pool = nn.AdaptiveAvgPool2d(1) if spec.global_pool == "avg" else None
                    layers += [pool or nn.AdaptiveMaxPool2d(1), nn.Flatten()]
        return nn.Sequential(*layers)


def _read_sequential(module: nn.Sequential) -> ArchSpec:
    """The spec of a CNN Sequential, or a one-line ``ValueError`` naming the offending layer."""
    _check_layer_types(module)
    sizes: list[int] = []
    kinds, kernels, strides, pads, acts = [], [], [], [], []
    pool, flattened, expect = None, False, "layer"
    for name, child in module.named_children():
        kind = type(child).__name__
        if isinstance(child, nn.Conv2d):
            if pool is not None:
                raise ValueError(f"layer {name} (Conv2d) comes after the global pooling")
            _check_conv(name, child)
            layer_in, layer_out = child.in_channels, child.out_channels
            kinds.append("conv2d")
            kernels.append(child.kernel_size[0])
            strides.append(child.stride[0])
            pads.append(child.padding[0])
        elif isinstance(child, nn.Linear):
            if not flattened:
                raise ValueError(
                    f"layer {name} (Linear) needs a global pooling and Flatten before it"
                )
            if child.bias is None:
                raise ValueError(f"layer {name} (Linear) has no bias; build it with bias=True")
            layer_in, layer_out = child.in_features, child.out_features
            kinds.append("linear")
            kernels.append(1)
            strides.append(1)
            pads.append(0)
        elif type(child) in ACTIVATION_MODULES:
            check_default_activation(name, child)
            if expect != "activation":
                raise ValueError(f"layer {name} ({kind}) must follow a Conv2d or Linear layer")
            acts.append(ACTIVATION_MODULES[type(child)])
            expect = "layer"
            continue
        elif type(child) in _POOLS:
            # expect == "activation": the last Conv2d's activation is missing or comes after the
            # pooling, where a CNN graph cannot put it (relu(avg(x)) is not avg(relu(x)))
            single = child.output_size in (1, (1, 1)) and pool is None and kinds
            if not single or expect == "activation":
                raise ValueError(
                    f"layer {name} ({kind}) must be one global pooling to 1x1 after the "
                    "convolutions and their activation"
                )
            pool = _POOLS[type(child)]
            continue
        else:  # Flatten, the only other kind _check_layer_types lets through
            _check_flatten(name, child, pool)
            flattened = True
            continue
        if expect != "layer":
            raise ValueError(f"layer {name} ({kind}) follows another layer without an activation")
        if sizes and layer_in != sizes[-1]:
            raise ValueError(
                f"layer {name} ({kind}) takes {layer_in} inputs but the layer before gives "
                f"{sizes[-1]}"
            )
        sizes += [layer_in, layer_out] if not sizes else [layer_out]
        expect = "activation"
    if not kinds or kinds[-1] != "linear" or expect != "activation":
        raise ValueError(
            "a CNN Sequential must end with a Linear layer (its output), with no activation "
            "after it"
        )
    uniform = len(set(acts)) <= 1
    return ArchSpec(
        tuple(sizes),
        activation=acts[0] if acts else "relu",
        family="cnn",
        layer_kinds=tuple(kinds),
        kernel_sizes=tuple(kernels),
        strides=tuple(strides),
        paddings=tuple(pads),
        activations=() if uniform else tuple(acts),
        global_pool=pool,
    )


def _check_layer_types(module: nn.Sequential) -> None:
    """Every layer one that a CNN graph represents, checked before the structure is read, so an
    unsupported layer is named as itself, not by what the layers around it then lack."""
    for name, child in module.named_children():
        kind = type(child)
        if not isinstance(child, (nn.Conv2d, nn.Linear, nn.Flatten)) and (
            kind not in ACTIVATION_MODULES and kind not in _POOLS
        ):
            raise ValueError(
                f"layer {name} ({kind.__name__}) is not supported in a CNN: expected Conv2d, an "
                "activation, AdaptiveAvgPool2d(1)/AdaptiveMaxPool2d(1), Flatten or Linear"
            )


def _check_flatten(name: str, flatten: nn.Flatten, pool: str | None) -> None:
    """``Flatten()`` right after the global pooling: what the rebuilt module will have."""
    if pool is None:
        raise ValueError(f"layer {name} (Flatten) needs the global pooling before it")
    if (flatten.start_dim, flatten.end_dim) != (1, -1):
        raise ValueError(f"layer {name} (Flatten) must be Flatten() (start_dim=1, end_dim=-1), "
                         f"got {flatten.start_dim}, {flatten.end_dim}")  # fmt: skip


def _check_conv(name: str, conv: nn.Conv2d) -> None:
    """Square kernels, equal strides and paddings, no dilation or groups, with a bias."""
    k, s, p = conv.kernel_size, conv.stride, conv.padding
    if conv.bias is None:
        raise ValueError(f"layer {name} (Conv2d) has no bias; build it with bias=True")
    if isinstance(p, str) or k[0] != k[1] or s[0] != s[1] or p[0] != p[1]:
        raise ValueError(
            f"layer {name} (Conv2d) needs a square kernel and equal integer stride and padding "
            f"in both directions, got kernel {k}, stride {s}, padding {p}"
        )
    if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
        raise ValueError(
            f"layer {name} (Conv2d) uses groups, dilation or non-zero padding, which a CNN "
            "graph does not represent"
        )


register_family(CNNFamily())
