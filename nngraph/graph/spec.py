"""Architecture specs, their cached index templates, and the registry of architecture families.

An :class:`ArchSpec` says what a network is (layer sizes, activation, family). Its family turns it,
once, into :class:`GraphTemplates`: integer index tensors that map a flat parameter vector onto the
node and edge attributes of the neural graph. Every graph operation in nngraph is a gather with
these templates, so no hot path re-derives layer sizes from tensor shapes.
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from nngraph.graph.activations import ACTIVATIONS

__all__ = [
    "ROLE_HIDDEN",
    "ROLE_INPUT",
    "ROLE_NAMES",
    "ROLE_OUTPUT",
    "ArchFamily",
    "ArchSpec",
    "GraphTemplates",
    "edge_layer_starts",
    "get_family",
    "index_runs",
    "register_family",
    "registered_families",
]

ROLE_INPUT, ROLE_HIDDEN, ROLE_OUTPUT = 0, 1, 2
ROLE_NAMES = ("input", "hidden", "output")


@dataclass(frozen=True)
class ArchSpec:
    """What a network is: its layer sizes, activation and family (the layout of its parameters).

    ``layer_sizes`` counts neurons per layer, inputs and outputs included: a 2-32-32-1 SIREN is
    ``(2, 32, 32, 1)``. ``w0`` is the SIREN frequency (``sin(w0 * (W x + b))``), used only when
    ``activation == "sine"``. ``out_offset`` is added to the network output (DWSNets' INRs add 0.5).
    ``family`` names the parameter layout registered with :func:`register_family` ("mlp": dense
    layers; SIRENs are ``family="mlp", activation="sine"``; "cnn": 2-D convolutions, a global
    pooling, then dense layers).

    Per weight layer, for families with more than dense layers: ``layer_kinds`` ("conv2d" or
    "linear"), ``kernel_sizes``, ``strides`` and ``paddings`` (empty: all linear, 1, 1, 0), and
    ``activations`` after every layer but the last (empty: ``activation`` everywhere).
    ``global_pool`` ("avg" or "max") turns the last convolution's channels into the first dense
    layer's inputs.
    """

    layer_sizes: tuple[int, ...]
    activation: str = "sine"
    w0: float = 30.0
    out_offset: float = 0.0
    family: str = "mlp"
    layer_kinds: tuple[str, ...] = ()
    kernel_sizes: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    paddings: tuple[int, ...] = ()
    activations: tuple[str, ...] = ()
    global_pool: str = "avg"

    def __post_init__(self) -> None:
        sizes = tuple(self.layer_sizes)
        if len(sizes) < 2:
            raise ValueError(
                f"ArchSpec.layer_sizes needs at least an input and an output size, got {sizes!r}"
            )
        checked = []
        for i, s in enumerate(sizes):
            try:
                size = operator.index(s) if not isinstance(s, bool) else 0
            except TypeError:
                size = 0
            if size < 1:
                raise ValueError(
                    f"ArchSpec.layer_sizes[{i}] must be a positive int, got {s!r} in {sizes!r}"
                )
            checked.append(size)
        sizes = tuple(checked)
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; choose one of {sorted(ACTIVATIONS)}"
            )
        try:
            w0 = float(self.w0)
        except (TypeError, ValueError):
            w0 = float("nan")
        if not 0 < w0 < float("inf"):
            raise ValueError(f"ArchSpec.w0 must be a positive finite number, got {self.w0!r}")
        try:
            offset = float(self.out_offset)
        except (TypeError, ValueError):
            offset = float("nan")
        if not math.isfinite(offset):
            raise ValueError(
                f"ArchSpec.out_offset must be a finite number, got {self.out_offset!r}"
            )
        object.__setattr__(self, "layer_sizes", sizes)
        object.__setattr__(self, "w0", w0)
        object.__setattr__(self, "out_offset", offset)
        _check_layer_fields(self)

    # ---- constructors -------------------------------------------------------------------------
    @classmethod
    def siren(
        cls,
        in_dim: int = 2,
        hidden_dim: int = 32,
        n_layers: int = 3,
        out_dim: int = 1,
        w0: float = 30.0,
        out_offset: float = 0.5,
    ) -> ArchSpec:
        """A SIREN as DWSNets builds its INRs: ``n_layers`` linear layers, sine with ``w0`` on all
        but the last, ``+ out_offset`` on the output. The defaults are the MNIST/FMNIST INRs."""
        if n_layers < 1:
            raise ValueError(f"a SIREN needs n_layers >= 1, got {n_layers}")
        sizes = (in_dim, *([hidden_dim] * (n_layers - 1)), out_dim)
        return cls(sizes, activation="sine", w0=w0, out_offset=out_offset)

    @classmethod
    def mlp(cls, layer_sizes: tuple[int, ...] | list[int], activation: str = "relu") -> ArchSpec:
        """A plain MLP (ReLU by default) with the given neurons per layer."""
        return cls(tuple(layer_sizes), activation=activation)

    @classmethod
    def cnn(
        cls,
        channels: tuple[int, ...] | list[int],
        head: tuple[int, ...] | list[int],
        kernel_size: int = 3,
        *,
        stride: int | tuple[int, ...] | list[int] = 1,
        padding: int | None = None,
        activation: str = "relu",
        global_pool: str = "avg",
    ) -> ArchSpec:
        """A CNN: ``channels`` (input channels first) joined by ``kernel_size`` convolutions, a
        global pooling, then dense layers of ``head`` sizes (the last is the output). ``stride``
        is one for all convolutions or one per convolution; ``padding`` defaults to
        ``kernel_size // 2`` (same size at stride 1)."""
        _check_cnn_arguments(channels, head, kernel_size, stride, padding)
        channels, head = tuple(channels), tuple(head)
        n_conv, n_lin = len(channels) - 1, len(head)
        if n_conv < 1 or n_lin < 1:
            raise ValueError(
                f"a CNN needs at least one convolution and one dense layer: channels={channels}, "
                f"head={head}"
            )
        pad = kernel_size // 2 if padding is None else padding
        strides = (stride,) * n_conv if isinstance(stride, int) else tuple(stride)
        if len(strides) != n_conv:
            raise ValueError(f"stride needs one entry per convolution ({n_conv}), got {strides}")
        return cls(
            (*channels, *head),
            activation=activation,
            family="cnn",
            layer_kinds=("conv2d",) * n_conv + ("linear",) * n_lin,
            kernel_sizes=(kernel_size,) * n_conv + (1,) * n_lin,
            strides=strides + (1,) * n_lin,
            paddings=(pad,) * n_conv + (0,) * n_lin,
            global_pool=global_pool,
        )

    # ---- derived sizes ------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        """Number of weight layers (one fewer than ``len(layer_sizes)``)."""
        return len(self.layer_sizes) - 1

    @property
    def in_dim(self) -> int:
        return self.layer_sizes[0]

    @property
    def out_dim(self) -> int:
        return self.layer_sizes[-1]

    @property
    def is_siren(self) -> bool:
        return self.activation == "sine"

    def kind_of(self, layer: int) -> str:
        """The kind of weight layer ``layer`` ("linear" or "conv2d")."""
        return self.layer_kinds[layer] if self.layer_kinds else "linear"

    def kernel_of(self, layer: int) -> int:
        """The kernel size of weight layer ``layer`` (1 for a dense layer)."""
        return self.kernel_sizes[layer] if self.kernel_sizes else 1

    def stride_of(self, layer: int) -> int:
        """The stride of weight layer ``layer`` (1 when the spec lists none)."""
        return self.strides[layer] if self.strides else 1

    def padding_of(self, layer: int) -> int:
        """The zero padding of weight layer ``layer`` (0 when the spec lists none)."""
        return self.paddings[layer] if self.paddings else 0

    def activation_of(self, layer: int) -> str:
        """The activation after weight layer ``layer`` (every layer but the last has one)."""
        return self.activations[layer] if self.activations else self.activation

    @property
    def activation_names(self) -> frozenset[str]:
        """Every activation this network applies (what an augmentation's validity depends on)."""
        return frozenset(self.activations) if self.activations else frozenset({self.activation})

    @property
    def has_convolutions(self) -> bool:
        return "conv2d" in self.layer_kinds

    @property
    def templates(self) -> GraphTemplates:
        """The cached index templates of this architecture (on the CPU)."""
        return _templates(self)

    def templates_on(self, device: torch.device | str) -> GraphTemplates:
        """The cached index templates, on ``device``."""
        return _templates_on(self, str(torch.device(device)))

    @property
    def num_params(self) -> int:
        return self.templates.num_params

    @property
    def num_nodes(self) -> int:
        return self.templates.num_nodes

    @property
    def num_edges(self) -> int:
        return self.templates.num_edges

    @property
    def param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """``(state-dict key, shape)`` of every parameter tensor, in the canonical flat order."""
        return get_family(self.family).param_shapes(self)

    # ---- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain types only: fits in JSON, a safetensors header or a weights-only checkpoint."""
        d = asdict(self)
        for name in _TUPLE_FIELDS:
            d[name] = list(d[name])
        # fields at their defaults are left out, so an MLP's dict reads as it always has
        for name in _LAYER_FIELDS:
            if d[name] == [] or (name == "global_pool" and d[name] == "avg"):
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArchSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown ArchSpec fields {sorted(unknown)}; known: {sorted(known)}")
        if "layer_sizes" not in d:
            raise ValueError("ArchSpec dict is missing 'layer_sizes'")
        values = {k: tuple(d[k]) if k in _TUPLE_FIELDS else d[k] for k in d}
        values["layer_sizes"] = tuple(int(s) for s in d["layer_sizes"])
        return cls(**values)

    def __str__(self) -> str:
        sizes = "-".join(str(s) for s in self.layer_sizes)
        if self.activations:
            act = "/".join(self.activations)
        else:
            act = f"sine w0={self.w0:g}" if self.is_siren else self.activation
        extra = f", out_offset={self.out_offset:g}" if self.out_offset else ""
        if self.has_convolutions:
            kernels = ",".join(
                f"{k}x{k}"
                for k, kind in zip(self.kernel_sizes, self.layer_kinds)
                if kind != "linear"
            )
            extra += f", conv {kernels}, {self.global_pool} pool"
        return f"{self.family} {sizes} ({act}{extra})"


def _check_cnn_arguments(
    channels: object, head: object, kernel_size: object, stride: object, padding: object
) -> None:
    """``ArchSpec.cnn``'s arguments of the right types, named when they are not."""

    def is_int(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    for name, value in (("channels", channels), ("head", head)):
        if not isinstance(value, (tuple, list)) or not all(is_int(v) for v in value):
            raise ValueError(f"ArchSpec.cnn: {name} must be a list of integers, got {value!r}")
    if not is_int(kernel_size) or (padding is not None and not is_int(padding)):
        raise ValueError(f"ArchSpec.cnn: kernel_size and padding must be integers, got "
                         f"{kernel_size!r} and {padding!r}")  # fmt: skip
    if not is_int(stride) and not (
        isinstance(stride, (tuple, list)) and all(is_int(v) for v in stride)
    ):
        raise ValueError(f"ArchSpec.cnn: stride must be an integer or one per convolution, got "
                         f"{stride!r}")  # fmt: skip


_TUPLE_FIELDS = ("layer_sizes", "layer_kinds", "kernel_sizes", "strides", "paddings", "activations")
_LAYER_FIELDS = ("layer_kinds", "kernel_sizes", "strides", "paddings", "activations", "global_pool")
LAYER_KINDS = ("linear", "conv2d")
GLOBAL_POOLS = ("avg", "max")


def _check_layer_fields(spec: ArchSpec) -> None:
    """Normalise the per-layer fields to tuples and reject what no network could be."""
    n = spec.n_layers
    for name, minimum in (("kernel_sizes", 1), ("strides", 1), ("paddings", 0)):
        values = tuple(getattr(spec, name))
        if values and len(values) != n:
            raise ValueError(
                f"ArchSpec.{name} needs one entry per weight layer ({n}), got {values}"
            )
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise ValueError(f"ArchSpec.{name} entries must be ints >= {minimum}, got {values}")
        object.__setattr__(spec, name, values)
    kinds = tuple(spec.layer_kinds)
    if kinds and len(kinds) != n:
        raise ValueError(
            f"ArchSpec.layer_kinds needs one entry per weight layer ({n}), got {kinds}"
        )
    for k in kinds:
        if k not in LAYER_KINDS:
            raise ValueError(f"unknown layer kind {k!r} in {kinds}; choose from {LAYER_KINDS}")
    first_dense = kinds.index("linear") if "linear" in kinds else len(kinds)
    if "conv2d" in kinds[first_dense:]:
        raise ValueError(
            f"layer_kinds {kinds}: every convolution must come before the global pooling and the "
            "dense layers"
        )
    if "conv2d" in kinds and not spec.kernel_sizes:
        raise ValueError(f"layer_kinds {kinds} has convolutions but no kernel_sizes; give one per "
                         "layer (1 for dense layers), or use ArchSpec.cnn")  # fmt: skip
    for i, k in enumerate(kinds):
        if k == "linear" and spec.kernel_sizes and spec.kernel_sizes[i] != 1:
            raise ValueError(f"dense layer {i} has kernel size {spec.kernel_sizes[i]}; use 1")
    acts = tuple(spec.activations)
    if acts and len(acts) != n - 1:
        raise ValueError(
            f"ArchSpec.activations needs one entry per layer but the last ({n - 1}), got {acts}"
        )
    for a in acts:
        if a not in ACTIVATIONS:
            raise ValueError(f"unknown activation {a!r}; choose one of {sorted(ACTIVATIONS)}")
    if spec.global_pool not in GLOBAL_POOLS:
        raise ValueError(f"unknown global_pool {spec.global_pool!r}; choose from {GLOBAL_POOLS}")
    object.__setattr__(spec, "layer_kinds", kinds)
    object.__setattr__(spec, "activations", acts)


@dataclass(frozen=True)
class GraphTemplates:
    """Index tensors that turn flat parameters into a neural graph (and back) by gathering.

    Nodes are ordered layer by layer. Edges come in one block per layer; within a block, edge
    (target i <- source j) sits at ``block_start + i * fan_in + j`` (a row-major weight matrix),
    which relabeling relies on and which is checked when templates are built. A node feature whose
    index is -1 has no parameter behind it (input neurons have no bias).
    """

    num_nodes: int
    num_edges: int
    num_params: int
    layer_start: tuple[int, ...]  # first node of each layer, plus num_nodes at the end
    edge_index: Tensor  # [2, E] long, source layer l -> target layer l + 1
    node_param_idx: Tensor  # [N, F_node] long, -1 where the feature has no parameter
    edge_param_idx: Tensor  # [E, F_edge] long
    layer: Tensor  # [N] long, the layer of each node (0 = inputs)
    role: Tensor  # [N] long, ROLE_INPUT / ROLE_HIDDEN / ROLE_OUTPUT
    edge_layer: Tensor  # [E] long, the weight layer of each edge (0 = first weight matrix)
    node_local: Tensor  # [N] long, position of each node within its layer
    edge_block_start: Tensor  # [E] long, first edge id of the edge's layer block
    edge_fan_in: Tensor  # [E] long, neurons in the edge's source layer
    node_has_param: Tensor  # [N, F_node] bool
    node_param_flat: Tensor  # [K] long, node_param_idx[node_has_param]
    node_param_pos: Tensor  # [K] long, flat positions in [N * F_node] of those features
    # The same gathers as runs ``(start, length)`` of consecutive parameters (start -1: zeros):
    # a handful of slices copy faster than an index_select over every element.
    node_runs: tuple[tuple[int, int], ...] = ()
    edge_runs: tuple[tuple[int, int], ...] = ()
    # Where some edge features have no parameter (a dense layer's scalar inside a CNN's kernel
    # vector): ``edge_param_idx[edge_has_param]`` and their flat positions in ``[E * F_edge]``.
    edge_param_flat: Tensor | None = None
    edge_param_pos: Tensor | None = None

    @property
    def node_dim(self) -> int:
        return self.node_param_idx.shape[1]

    @property
    def edge_dim(self) -> int:
        return self.edge_param_idx.shape[1]

    @property
    def hidden_layers(self) -> range:
        """Indices of the layers whose neurons are exchangeable."""
        return range(1, len(self.layer_start) - 2)

    def to(self, device: torch.device | str) -> GraphTemplates:
        moved = {
            f.name: (
                getattr(self, f.name).to(device)
                if isinstance(getattr(self, f.name), Tensor)
                else getattr(self, f.name)
            )
            for f in fields(self)
        }
        return GraphTemplates(**moved)


def index_runs(index: Tensor) -> tuple[tuple[int, int], ...]:
    """Split a flat gather index into runs ``(start, length)`` of consecutive parameters, with
    ``start == -1`` for a run of positions that have no parameter (they gather zeros)."""
    runs: list[list[int]] = []
    for i in index.reshape(-1).tolist():
        if runs and ((i < 0 and runs[-1][0] < 0) or (i >= 0 <= runs[-1][0] and sum(runs[-1]) == i)):
            runs[-1][1] += 1
        else:
            runs.append([-1 if i < 0 else i, 1])
    return tuple((a, b) for a, b in runs)


class ArchFamily(Protocol):
    """What a family of architectures provides so that graphs, batches and relabelings work for it.

    The graph code only ever calls these; a new family (CNNs, say) registers an object with them and
    touches nothing else.
    """

    name: str

    def param_shapes(self, spec: ArchSpec) -> list[tuple[str, tuple[int, ...]]]: ...

    def templates(self, spec: ArchSpec) -> GraphTemplates: ...

    def spec_from_state_dict(self, state_dict: dict[str, Tensor]) -> ArchSpec: ...

    def state_dict_to_params(self, state_dict: dict[str, Tensor], spec: ArchSpec) -> Tensor: ...

    def spec_from_module(self, module: nn.Module) -> ArchSpec | None: ...

    def build_module(self, spec: ArchSpec) -> nn.Module: ...


_FAMILIES: dict[str, ArchFamily] = {}


def register_family(family: ArchFamily) -> ArchFamily:
    """Make ``family`` available to every spec whose ``family`` field names it."""
    _FAMILIES[family.name] = family
    return family


def get_family(name: str) -> ArchFamily:
    if name not in _FAMILIES:
        raise ValueError(
            f"unknown architecture family {name!r}; registered: {sorted(_FAMILIES)}. "
            "Register one with nngraph.graph.register_family."
        )
    return _FAMILIES[name]


def registered_families() -> list[str]:
    return sorted(_FAMILIES)


@functools.cache
def edge_layer_starts(spec: ArchSpec) -> tuple[int, ...]:
    """First edge of each weight layer, plus the number of edges (edge blocks are contiguous)."""
    counts = torch.bincount(spec.templates.edge_layer, minlength=spec.n_layers).tolist()
    starts = [0]
    for c in counts:
        starts.append(starts[-1] + c)
    return tuple(starts)


@functools.cache
def _templates(spec: ArchSpec) -> GraphTemplates:
    t = get_family(spec.family).templates(spec)
    _check_edge_order(spec, t)
    return t


def _check_edge_order(spec: ArchSpec, t: GraphTemplates) -> None:
    """Relabeling finds an edge from its endpoints as ``block_start + fan_in * dst + src``; a family
    must order the edges of each layer target-major (as a row-major weight matrix) for that."""
    src, dst = t.edge_index
    found = t.edge_block_start + t.node_local[dst] * t.edge_fan_in + t.node_local[src]
    if not torch.equal(found, torch.arange(t.num_edges)):
        raise ValueError(
            f"family {spec.family!r} orders its edges in a way relabeling cannot use: within each "
            "layer, edge (target i <- source j) must sit at block_start + i * fan_in + j"
        )


@functools.cache
def _templates_on(spec: ArchSpec, device: str) -> GraphTemplates:
    return _templates(spec).to(device)
