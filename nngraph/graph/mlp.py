"""The "mlp" architecture family: dense layers (SIRENs, ReLU/tanh MLPs) as neural graphs.

Layout: state dict ``seq.{l}.weight`` ``[n_{l+1}, n_l]`` and ``seq.{l}.bias`` ``[n_{l+1}]``,
flattened in that order. Neuron ``j`` of layer ``l`` -> neuron ``i`` of layer ``l + 1`` is one edge
whose attribute is ``W_l[i, j]``; edges are ordered as the weights are flattened (row-major).
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn

from nngraph.graph.activations import ACTIVATIONS
from nngraph.graph.layered import layered_templates
from nngraph.graph.spec import (
    ArchSpec,
    GraphTemplates,
    register_family,
)

__all__ = ["ACTIVATION_MODULES", "MLPFamily", "activation_module", "check_default_activation"]

ACTIVATION_MODULES: dict[type[nn.Module], str] = {
    nn.ReLU: "relu",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    nn.GELU: "gelu",
    nn.SiLU: "silu",
    nn.LeakyReLU: "leaky_relu",
    nn.Identity: "identity",
}
_TRAILING_INT = re.compile(r"^(.*?)(\d+)$")

#: layers that make a stack a CNN (or something no family reads): never an MLP's
SPATIAL = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
           nn.ConvTranspose3d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.MaxPool2d,
           nn.AvgPool2d, nn.Flatten)  # fmt: skip


def activation_module(name: str) -> nn.Module:
    """The parameter-free ``nn.Module`` of a named activation (not ``sine``: SIRENs are built by
    ``nngraph.inr.siren``)."""
    for cls, known in ACTIVATION_MODULES.items():
        if known == name:
            return cls()
    known = sorted(set(ACTIVATIONS) - {"sine"})
    raise ValueError(f"activation {name!r} has no nn.Module here; choose from {known}")


def _check_mlp(spec: ArchSpec) -> None:
    if spec.layer_kinds and set(spec.layer_kinds) != {"linear"}:
        raise ValueError(
            f"{spec} has convolutions; family 'mlp' is dense layers only (use ArchSpec.cnn)"
        )
    if len(spec.activation_names) > 1:
        raise ValueError(
            f"family 'mlp' applies one activation everywhere; {spec} names several "
            f"({sorted(spec.activation_names)})"
        )


class MLPFamily:
    """Dense MLPs of any activation; registered under the name ``"mlp"``."""

    name = "mlp"

    def param_shapes(self, spec: ArchSpec) -> list[tuple[str, tuple[int, ...]]]:
        _check_mlp(spec)
        shapes: list[tuple[str, tuple[int, ...]]] = []
        for layer, (n_in, n_out) in enumerate(zip(spec.layer_sizes[:-1], spec.layer_sizes[1:])):
            shapes.append((f"seq.{layer}.weight", (n_out, n_in)))
            shapes.append((f"seq.{layer}.bias", (n_out,)))
        return shapes

    def templates(self, spec: ArchSpec) -> GraphTemplates:
        _check_mlp(spec)
        return layered_templates(spec.layer_sizes, (1,) * spec.n_layers)  # weights are 1x1

    # ---- state dicts --------------------------------------------------------------------------
    def spec_from_state_dict(self, state_dict: dict[str, Tensor]) -> ArchSpec:
        """Infer layer sizes from the shapes; the activation cannot be read from a state dict, so
        it is taken to be a DWSNets SIREN (sine, w0=30, +0.5 output offset)."""
        layers = _layer_keys(state_dict)
        sizes: list[int] = []
        for idx, (w_key, _) in enumerate(layers):
            w = state_dict[w_key]
            if not isinstance(w, Tensor):
                raise ValueError(f"{w_key} must be a tensor, got {type(w).__name__}")
            if w.dim() == 4:
                raise ValueError(
                    f"{w_key} has shape {tuple(w.shape)}, a 2-D convolution: a CNN's stride, "
                    "padding and pooling are not in its state dict; pass spec=ArchSpec.cnn(...)"
                )
            if w.dim() != 2:
                raise ValueError(f"{w_key} must be a 2-D weight matrix, got shape {tuple(w.shape)}")
            if idx == 0:
                sizes.append(int(w.shape[1]))
            elif w.shape[1] != sizes[-1]:
                raise ValueError(
                    f"{w_key} has shape {tuple(w.shape)}: its {w.shape[1]} inputs do not match the "
                    f"{sizes[-1]} outputs of the layer before it"
                )
            sizes.append(int(w.shape[0]))
        return ArchSpec(tuple(sizes), activation="sine", w0=30.0, out_offset=0.5)

    def state_dict_to_params(self, state_dict: dict[str, Tensor], spec: ArchSpec) -> Tensor:
        layers = _layer_keys(state_dict)
        expected = self.param_shapes(spec)
        if len(layers) != spec.n_layers:
            found = ", ".join(w for w, _ in layers) or "none"
            if len(layers) < spec.n_layers:
                missing = _key_like(layers, len(layers))
                raise ValueError(
                    f"state dict has {len(layers)} layers (weights: {found}) but {spec} has "
                    f"{spec.n_layers}: missing key {missing}.weight"
                )
            raise ValueError(
                f"state dict has {len(layers)} layers (weights: {found}) but {spec} has "
                f"{spec.n_layers}: unexpected key {layers[spec.n_layers][0]}"
            )
        flat = []
        for idx, (w_key, b_key) in enumerate(layers):
            for key, (_, shape) in ((w_key, expected[2 * idx]), (b_key, expected[2 * idx + 1])):
                value = state_dict[key]
                if not isinstance(value, Tensor) or not value.is_floating_point():
                    kind = value.dtype if isinstance(value, Tensor) else type(value).__name__
                    raise ValueError(f"{key} must be a floating-point tensor, got {kind}")
                if tuple(value.shape) != shape:
                    raise ValueError(
                        f"{key} has shape {tuple(value.shape)} but layer {idx} of {spec} expects "
                        f"{shape}"
                    )
                flat.append(value.detach().reshape(-1))
        return torch.cat(flat)

    # ---- modules ------------------------------------------------------------------------------
    def spec_from_module(self, module: nn.Module) -> ArchSpec | None:
        """Read the spec of an nngraph MLP/Siren, or of an ``nn.Sequential`` of Linear and
        activation layers; ``None`` for anything else."""
        spec = getattr(module, "spec", None)
        if isinstance(spec, ArchSpec):
            return spec
        if not isinstance(module, nn.Sequential) or any(isinstance(c, SPATIAL) for c in module):
            return None  # a stack with convolutions or pooling is the CNN family's to read
        sizes: list[int] = []
        activations: set[str] = set()
        expect_linear = True
        for name, child in module.named_children():
            kind = type(child).__name__
            if isinstance(child, nn.Linear):
                if not expect_linear and len(sizes) > 0:
                    raise ValueError(
                        f"layer {name} (Linear) follows another Linear without an activation; "
                        "two stacked Linear layers are not a supported MLP"
                    )
                if child.bias is None:
                    raise ValueError(
                        f"layer {name} (Linear) has no bias; neural graphs need one per neuron "
                        "(build it with bias=True and zero it)"
                    )
                if sizes and child.in_features != sizes[-1]:
                    raise ValueError(
                        f"layer {name} (Linear) takes {child.in_features} inputs but the layer "
                        f"before it gives {sizes[-1]}"
                    )
                if not sizes:
                    sizes.append(child.in_features)
                sizes.append(child.out_features)
                expect_linear = False
            elif type(child) in ACTIVATION_MODULES:
                check_default_activation(name, child)
                if expect_linear:
                    raise ValueError(
                        f"layer {name} ({kind}) must follow a Linear layer; activations between "
                        "Linear layers are the only ones an MLP graph can represent"
                    )
                activations.add(ACTIVATION_MODULES[type(child)])
                expect_linear = True
            else:
                supported = ", ".join(sorted(c.__name__ for c in ACTIVATION_MODULES))
                raise ValueError(
                    f"layer {name} ({kind}) is not supported in an MLP: expected nn.Linear or "
                    f"an activation ({supported})"
                )
        if not sizes:
            raise ValueError("the nn.Sequential has no Linear layer, so it is not an MLP")
        if expect_linear:
            raise ValueError(
                "the nn.Sequential ends with an activation; an activation after the last Linear "
                "is not part of an MLP graph (apply it outside the network)"
            )
        if len(activations) > 1:
            raise ValueError(f"mixed activations {sorted(activations)}; an MLP spec has one")
        act = activations.pop() if activations else "identity"
        return ArchSpec(tuple(sizes), activation=act)

    def build_module(self, spec: ArchSpec) -> nn.Module:
        from nngraph.inr.siren import MLP, Siren

        return Siren(spec=spec) if spec.is_siren else MLP(spec)


def check_default_activation(name: str, child: nn.Module) -> None:
    """Only the parameter-free defaults are representable by an activation name."""
    if isinstance(child, nn.GELU) and child.approximate != "none":
        raise ValueError(
            f"layer {name} (GELU approximate={child.approximate!r}) is not supported: only the "
            "exact GELU (approximate='none') is an MLP activation"
        )
    if isinstance(child, nn.LeakyReLU) and child.negative_slope != 0.01:
        raise ValueError(
            f"layer {name} (LeakyReLU negative_slope={child.negative_slope}) is not supported: "
            "only the default slope 0.01 is an MLP activation"
        )


def _layer_keys(state_dict: dict[str, Tensor]) -> list[tuple[str, str]]:
    """``(weight_key, bias_key)`` per layer, in layer order, for any ``<prefix>.weight/.bias``
    layout (``seq.0.weight`` as in DWSNets, ``0.weight`` as in nn.Sequential, ...)."""
    if not isinstance(state_dict, dict):
        raise ValueError(
            f"expected a state dict (a dict of tensors), got {type(state_dict).__name__}"
        )
    groups: dict[str, dict[str, str]] = {}
    for key in state_dict:
        prefix, _, leaf = str(key).rpartition(".")
        if leaf not in ("weight", "bias"):
            raise ValueError(
                f"unexpected key {key!r}: an MLP state dict holds only '<layer>.weight' and "
                "'<layer>.bias' entries"
            )
        groups.setdefault(prefix, {})[leaf] = key
    if not groups:
        raise ValueError(
            "the state dict is empty: expected '<layer>.weight' and '<layer>.bias' keys"
        )
    prefixes = list(groups)
    numbered = [_TRAILING_INT.match(p) for p in prefixes]
    if all(numbered) and len({m.group(1) for m in numbered}) == 1:
        # one naming scheme ("seq.0", "seq.1", ..., "seq.10"): order by number, not as text
        prefixes.sort(key=lambda p: int(_TRAILING_INT.match(p).group(2)))
    layers = []
    for prefix in prefixes:
        leaves = groups[prefix]
        dot = f"{prefix}." if prefix else ""
        for leaf in ("weight", "bias"):
            if leaf not in leaves:
                raise ValueError(
                    f"missing key {dot}{leaf} (layer {prefix!r} has only {sorted(leaves)})"
                )
        layers.append((leaves["weight"], leaves["bias"]))
    return layers


def _key_like(layers: list[tuple[str, str]], index: int) -> str:
    """The prefix layer ``index`` would have in the same layout as ``layers`` (``seq.{index}``)."""
    if layers:
        match = _TRAILING_INT.match(layers[0][0].rpartition(".")[0])
        if match:
            return f"{match.group(1)}{index}"
    return f"seq.{index}"


register_family(MLPFamily())
