"""Networks <-> neural graphs (PyG ``Data`` / ``Batch``), all by gathering with spec templates.

A neural graph has ``x`` ``[N, F]`` (biases; 0 for input neurons), ``edge_index`` ``[2, E]``
(layer l -> l + 1), ``edge_attr`` ``[E, F_e]`` (weights), per-node ``layer`` and ``role``
(0 input, 1 hidden, 2 output), per-edge ``edge_layer``, and ``spec`` (the :class:`ArchSpec`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from nngraph.graph.spec import ArchSpec, GraphTemplates, get_family, registered_families
from nngraph.graph.validate import check_finite, check_params_shape

__all__ = [
    "from_module",
    "from_params",
    "from_state_dict",
    "graph_spec",
    "num_graphs",
    "params_from_features",
    "to_graph_batch",
    "to_module",
    "to_params",
    "to_state_dict",
]

Graph = Data  # a Data or a Batch (Batch subclasses Data)


def from_params(params: Tensor, spec: ArchSpec, *, validate: bool = True) -> Data:
    """One network's flat parameters ``[P]`` (canonical order) -> its neural graph."""
    if not isinstance(params, Tensor):
        raise ValueError(f"params must be a tensor of shape [P], got {type(params).__name__}")
    if params.dim() != 1:
        raise ValueError(
            f"from_params takes one network's parameters [P]; got shape {tuple(params.shape)} "
            "(use to_graph_batch for [B, P])"
        )
    if not isinstance(spec, ArchSpec):
        raise ValueError(f"spec must be an ArchSpec, got {type(spec).__name__} {spec!r}")
    rows = params.unsqueeze(0)
    check_params_shape(rows, spec)
    if validate:
        check_finite(rows, spec)
    t = spec.templates_on(params.device)
    x, edge_attr = _gather_features(rows, t)
    return Data(
        x=x,
        edge_index=t.edge_index.clone(),
        edge_attr=edge_attr,
        layer=t.layer.clone(),
        role=t.role.clone(),
        edge_layer=t.edge_layer.clone(),
        spec=spec,
    )


def from_state_dict(
    state_dict: Mapping[str, Tensor], spec: ArchSpec | None = None, *, validate: bool = True
) -> Data:
    """A state dict (DWSNets layout ``seq.{i}.weight``/``.bias``, or any ``<layer>.weight/.bias``
    layout in layer order) -> neural graph. Without ``spec`` the layer sizes come from the shapes
    and the network is taken to be a DWSNets SIREN (sine, w0=30, +0.5); pass ``spec`` otherwise."""
    state_dict = dict(state_dict)
    family = get_family(spec.family if spec is not None else "mlp")
    if spec is None:
        spec = family.spec_from_state_dict(state_dict)
    params = family.state_dict_to_params(state_dict, spec)
    if validate:
        _check_finite_state_dict(state_dict, params, spec)
    return from_params(params, spec, validate=False)


def from_module(module: nn.Module, spec: ArchSpec | None = None, *, validate: bool = True) -> Data:
    """An ``nn.Module`` -> neural graph. nngraph's ``MLP``/``Siren`` and ``nn.Sequential`` stacks of
    ``Linear`` + activation are recognised; for any other module pass its ``spec``."""
    if not isinstance(module, nn.Module):
        raise ValueError(f"from_module takes an nn.Module, got {type(module).__name__}")
    if spec is None:
        spec = _spec_from_module(module)
    else:
        _check_given_spec(module, spec)
    return from_state_dict(module.state_dict(), spec, validate=validate)


def _check_given_spec(module: nn.Module, spec: ArchSpec) -> None:
    """A ``spec`` passed for a module nngraph can read must agree with it wherever the function
    depends on it (activations, strides, padding, pooling), not only in parameter shapes."""
    try:
        read = _spec_from_module(module)
    except ValueError:  # a module no family reads: the given spec is all there is
        return
    fields = ("family", "layer_sizes", "layer_kinds", "kernel_sizes", "strides", "paddings")
    fields = fields if read.family == "cnn" else ()  # an MLP's shapes are checked by its params
    differ = [f for f in fields if getattr(read, f) != getattr(spec, f)]
    acts = [spec.activation_of(i) for i in range(spec.n_layers - 1)]
    if acts != [read.activation_of(i) for i in range(read.n_layers - 1)]:
        differ.append("activations")
    if read.has_convolutions and read.global_pool != spec.global_pool:
        differ.append("global_pool")
    if differ:
        raise ValueError(
            f"from_module: spec={spec} contradicts the module ({read}) in {', '.join(differ)}; "
            "leave spec out to read it from the module"
        )


def _spec_from_module(module: nn.Module) -> ArchSpec:
    """Ask each registered family to read the module; the first that recognises it wins."""
    errors: list[ValueError] = []
    for name in registered_families():
        try:
            spec = get_family(name).spec_from_module(module)
        except ValueError as err:  # recognised the kind of module, but it is malformed
            errors.append(err)
            continue
        if spec is not None:
            return spec
    if len(errors) == 1:
        raise errors[0]
    if errors:
        reasons = "; ".join(str(e) for e in errors)
        raise ValueError(f"no architecture family can read this {type(module).__name__}: {reasons}")
    raise ValueError(
        f"cannot read the architecture of a {type(module).__name__}: nngraph recognises its own "
        "MLP/Siren and nn.Sequential(Linear, activation, ..., Linear). Pass spec=ArchSpec(...) to "
        "convert its state dict with a known architecture."
    )


def to_graph_batch(
    params: Tensor,
    spec: ArchSpec,
    y: Tensor | None = None,
    *,
    idx: Tensor | None = None,
    validate: bool = False,
) -> Batch:
    """``params[B, P]`` -> a PyG ``Batch`` of B neural graphs, built by gathering with the templates
    (no per-sample loop). Equal, field by field, to ``Batch.from_data_list`` of the per-sample
    graphs; ``y`` (``[B]`` labels or ``[B, C]`` soft labels) is attached per graph, and so is
    ``idx`` (``[B]``: the graphs' rows in their store, which aligned MixUp's cache looks up)."""
    check_params_shape(params, spec)
    if validate:
        check_finite(params, spec)
    b = params.shape[0]
    if b == 0:
        raise ValueError("params has no rows: a batch needs at least one network")
    for name, value in (("y", y), ("idx", idx)):
        if value is not None and (
            not isinstance(value, Tensor) or value.dim() == 0 or value.shape[0] != b
        ):
            raise ValueError(
                f"{name} must be a tensor with {b} rows (one per network), got "
                f"{type(value).__name__} of shape {tuple(getattr(value, 'shape', ()))}"
            )
    t = spec.templates_on(params.device)
    x, edge_attr = _gather_features(params, t)
    shared = _batch_structure(spec, b, str(params.device))

    out = Batch(_base_cls=Data)
    out.x = x
    for key, value in shared["fields"].items():
        setattr(out, key, value)
    out.edge_attr = edge_attr
    graph_fields = {k: v for k, v in (("y", y), ("idx", idx)) if v is not None}
    for key, value in graph_fields.items():
        setattr(out, key, value)
    out.batch = shared["batch"]
    out.ptr = shared["ptr"]
    keys = {
        k: v for k, v in shared["slice_dict"].items() if k not in ("y", "idx") or k in graph_fields
    }
    out._num_graphs = b
    out._slice_dict = dict(keys)
    out._inc_dict = {k: shared["inc_dict"][k] for k in keys}
    return out


def graph_spec(g: Graph) -> ArchSpec:
    """The one :class:`ArchSpec` of a graph or of a batch of graphs of one architecture."""
    spec = getattr(g, "spec", None)
    if isinstance(spec, ArchSpec):
        return spec
    if isinstance(spec, list) and spec and isinstance(spec[0], ArchSpec):
        first = spec[0]
        if any(s is not first and s != first for s in spec):
            kinds = sorted({repr(s) for s in spec})
            raise ValueError(f"the batch mixes architectures {kinds}; this needs one architecture")
        return first
    raise ValueError(
        "the graph has no 'spec' attribute; build graphs with nngraph.graph.from_module, "
        "from_state_dict, from_params or to_graph_batch"
    )


def num_graphs(g: Graph) -> int:
    """How many networks ``g`` holds (1 for a ``Data``)."""
    return int(g.num_graphs) if isinstance(g, Batch) else 1


def to_params(g: Graph) -> Tensor:
    """Exact inverse of the builders: ``[P]`` for one graph, ``[B, P]`` for a batch."""
    spec = graph_spec(g)
    b = num_graphs(g)
    t = spec.templates_on(g.x.device)
    n, e = t.num_nodes, t.num_edges
    if tuple(g.x.shape) != (b * n, t.node_dim) or tuple(g.edge_attr.shape) != (b * e, t.edge_dim):
        raise ValueError(
            f"graph features do not fit {spec} x {b}: x {tuple(g.x.shape)} (expected "
            f"{(b * n, t.node_dim)}), edge_attr {tuple(g.edge_attr.shape)} (expected "
            f"{(b * e, t.edge_dim)})"
        )
    params = params_from_features(g.x.view(b, n, -1), g.edge_attr.view(b, e, -1), spec)
    return params if isinstance(g, Batch) else params[0]


def params_from_features(x: Tensor, e: Tensor, spec: ArchSpec) -> Tensor:
    """Flat parameters ``[B, P]`` from dense node / edge features ``x [B, N, F]``, ``e [B, E, F_e]``
    (differentiable: a scatter by the spec's templates)."""
    b = x.shape[0]
    t = spec.templates_on(x.device)
    edges = e.reshape(b, -1)
    params = e.new_zeros(b, t.num_params)
    if t.edge_param_flat is None:
        params = params.index_copy(1, t.edge_param_idx.view(-1), edges)
    else:  # some edge features are padding (no parameter behind them)
        params = params.index_copy(1, t.edge_param_flat, edges[:, t.edge_param_pos])
    return params.index_copy(1, t.node_param_flat, x.reshape(b, -1)[:, t.node_param_pos])


def to_state_dict(g: Graph) -> dict[str, Tensor]:
    """One graph -> the network's state dict (DWSNets layout for MLPs); exact inverse of
    :func:`from_state_dict`."""
    if num_graphs(g) != 1:
        raise ValueError(
            f"to_state_dict takes one graph, got a batch of {num_graphs(g)}; use "
            "batch.get_example(i), or to_params(batch) for all of them"
        )
    spec = graph_spec(g)
    params = to_params(g).reshape(-1)
    out, offset = {}, 0
    for key, shape in spec.param_shapes:
        size = int(torch.Size(shape).numel())
        out[key] = params[offset : offset + size].view(shape).clone()
        offset += size
    return out


def to_module(g: Graph) -> nn.Module:
    """One graph -> a ready ``nn.Module`` (``Siren`` for sine specs, ``MLP`` otherwise) computing
    exactly the network the graph encodes, on the graph's device and dtype."""
    state_dict = to_state_dict(g)
    module = get_family(graph_spec(g).family).build_module(graph_spec(g))
    module.to(device=g.x.device, dtype=g.x.dtype)
    module.load_state_dict(state_dict)
    return module


def _gather_features(params: Tensor, t: GraphTemplates) -> tuple[Tensor, Tensor]:
    b = params.shape[0]
    x = _gather_runs(params, t.node_runs, t.node_param_idx, t.num_nodes * t.node_dim)
    edge_attr = _gather_runs(params, t.edge_runs, t.edge_param_idx, t.num_edges * t.edge_dim)
    return x.view(b * t.num_nodes, t.node_dim), edge_attr.view(b * t.num_edges, t.edge_dim)


_MAX_RUNS = 64  # past this many runs one index_select beats many slices


def _gather_runs(params: Tensor, runs: tuple, index: Tensor, width: int) -> Tensor:
    """``params[:, index]`` with zeros where ``index`` is -1, as ``[B, width]`` (a fresh tensor)."""
    if runs and len(runs) <= _MAX_RUNS:
        pieces = [
            params[:, start : start + length]
            if start >= 0
            else params.new_zeros(len(params), length)
            for start, length in runs
        ]
        if len(pieces) == 1:
            return pieces[0].clone(memory_format=torch.contiguous_format)
        return torch.cat(pieces, dim=1)
    flat = index.reshape(-1)
    padded = torch.cat([params, params.new_zeros(len(params), 1)], dim=1)
    return padded.index_select(1, torch.where(flat >= 0, flat, params.shape[1]))


_STRUCTURES: OrderedDict[tuple, tuple[dict, list[tuple[Tensor, int]]]] = OrderedDict()
_MAX_STRUCTURES = 32


def _batch_structure(spec: ArchSpec, b: int, device: str) -> dict:
    """The parts of a batch that depend only on (architecture, batch size, device), built once and
    shared by every batch of that size. Shared tensors are rebuilt if anyone edited one in place
    (its autograd version counter moved), so a ``batch.edge_index += 1`` never leaks into the next
    batch."""
    key = (spec, b, device)
    hit = _STRUCTURES.get(key)
    if hit is not None and all(t._version == v for t, v in hit[1]):
        _STRUCTURES.move_to_end(key)
        return hit[0]
    built = _build_batch_structure(spec, b, device)
    tensors = [
        v
        for part in (built["fields"], built["slice_dict"], built["inc_dict"])
        for v in part.values()
        if isinstance(v, Tensor)
    ] + [built["batch"], built["ptr"]]
    _STRUCTURES[key] = (built, [(t, t._version) for t in tensors])
    if len(_STRUCTURES) > _MAX_STRUCTURES:
        _STRUCTURES.popitem(last=False)
    return built


def _build_batch_structure(spec: ArchSpec, b: int, device: str) -> dict:
    t = spec.templates_on(device)
    n, e = t.num_nodes, t.num_edges
    graphs = torch.arange(b, device=device)
    steps = torch.arange(b + 1)
    zeros = torch.zeros(b, dtype=torch.long)
    per_node, per_edge = steps * n, steps * e
    return {
        "fields": {
            "edge_index": (t.edge_index.unsqueeze(1) + (graphs * n).view(1, b, 1)).view(2, b * e),
            "layer": t.layer.repeat(b),
            "role": t.role.repeat(b),
            "edge_layer": t.edge_layer.repeat(b),
            "spec": [spec] * b,
        },
        "batch": graphs.repeat_interleave(n),
        "ptr": torch.arange(b + 1, device=device) * n,
        # The bookkeeping Batch.from_data_list keeps, so get_example / to_data_list / index work.
        "slice_dict": {
            "x": per_node,
            "edge_index": per_edge,
            "edge_attr": per_edge,
            "layer": per_node,
            "role": per_node,
            "edge_layer": per_edge,
            "spec": steps,
            "y": steps,
            "idx": steps,
        },
        "inc_dict": {
            "x": zeros,
            "edge_index": steps[:-1] * n,
            "edge_attr": zeros,
            "layer": zeros,
            "role": zeros,
            "edge_layer": zeros,
            "spec": None,
            "y": zeros,
            "idx": zeros,
        },
    }


def _check_finite_state_dict(state_dict: dict[str, Tensor], params: Tensor, spec: ArchSpec) -> None:
    if params.is_meta:
        raise ValueError("the weights are on the meta device (shapes only, no values): load or "
                         "initialise real weights first")  # fmt: skip
    if bool(torch.isfinite(params).all()):
        return
    for key, value in state_dict.items():
        if not bool(torch.isfinite(value).all()):
            n_nan, n_inf = int(torch.isnan(value).sum()), int(torch.isinf(value).sum())
            raise ValueError(
                f"{key} holds non-finite values ({n_nan} NaN, {n_inf} Inf). The network diverged "
                "or the file is corrupt; drop it, or pass validate=False to convert it anyway."
            )
    check_finite(params, spec)
