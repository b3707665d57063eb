"""What every weight-space model shares: the architecture it was built for, the check that a batch
fits it, per-layer input normalisation, and the embeddings it returns (graph, and node/edge where
the model has them)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from nngraph.data.normalize import LayerStats, normalize_view
from nngraph.graph.convert import Graph
from nngraph.graph.spec import ArchSpec
from nngraph.graph.view import GraphView

__all__ = ["Embeddings", "WeightSpaceModel", "check_compatible"]


@dataclass
class Embeddings:
    """A model's output: ``graph [B, D]`` always; ``node [B*N, D_n]`` and ``edge [B*E, D_e]`` in
    the batch's node and edge order where the model keeps per-neuron / per-weight states."""

    graph: Tensor
    node: Tensor | None = None
    edge: Tensor | None = None


def check_compatible(model_spec: ArchSpec, spec: ArchSpec, *, any_hidden_width: bool) -> None:
    """Raise ``ValueError`` unless networks of ``spec`` can go through a model built for
    ``model_spec``: same family, activation, depth, input and output sizes (and hidden widths too,
    unless the model handles any)."""
    problems = []
    if spec.family != model_spec.family:
        problems.append(f"family {spec.family!r} vs {model_spec.family!r}")
    acts = [spec.activation_of(i) for i in range(spec.n_layers - 1)]
    model_acts = [model_spec.activation_of(i) for i in range(model_spec.n_layers - 1)]
    if (spec.activation, spec.w0) != (model_spec.activation, model_spec.w0):
        problems.append(
            f"activation {spec.activation} (w0={spec.w0:g}) vs {model_spec.activation} "
            f"(w0={model_spec.w0:g})"
        )
    elif len(acts) == len(model_acts) and acts != model_acts:
        problems.append(f"activations per layer {acts} vs {model_acts}")
    if (spec.layer_kinds, spec.kernel_sizes) != (model_spec.layer_kinds, model_spec.kernel_sizes):
        problems.append(
            f"layers {spec.layer_kinds or 'dense'} / kernels {spec.kernel_sizes or 1} vs "
            f"{model_spec.layer_kinds or 'dense'} / {model_spec.kernel_sizes or 1}"
        )
    a, b = spec.layer_sizes, model_spec.layer_sizes
    if len(a) != len(b):
        problems.append(f"{len(a) - 1} weight layers vs {len(b) - 1}")
    elif (a[0], a[-1]) != (b[0], b[-1]):
        problems.append(f"inputs/outputs {a[0]}/{a[-1]} vs {b[0]}/{b[-1]}")
    elif not any_hidden_width and a != b:
        problems.append(f"hidden widths {a[1:-1]} vs {b[1:-1]}")
    if problems:
        what = "any hidden widths" if any_hidden_width else "exactly this architecture"
        raise ValueError(
            f"this model was built for {model_spec} and takes {what}; the batch holds {spec} "
            f"({'; '.join(problems)}). Build the model with spec= the data's architecture."
        )


class WeightSpaceModel(nn.Module):
    """Base of the models: ``forward(batch) -> Embeddings``; ``out_dim`` is the size of
    ``Embeddings.graph``; ``any_hidden_width`` says whether hidden widths may differ from
    ``spec``. With :meth:`set_input_stats`, the layers see per-layer standardised weights and
    biases while features of the real function (probes) read the batch as it came."""

    any_hidden_width: bool = True
    out_dim: int

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        if not isinstance(spec, ArchSpec):
            raise ValueError(f"spec must be an ArchSpec, got {type(spec).__name__}")
        self.spec = spec
        self.register_buffer("input_stats", None)  # [4, L] once set: saved with the model

    def set_input_stats(self, stats: LayerStats | None) -> None:
        """Standardise inputs with ``stats`` (the training split's, :func:`layer_stats`) from now
        on; ``None``: feed the parameters as they are."""
        self.input_stats = None if stats is None else stats.stacked().float()

    def views(self, batch: Graph) -> tuple[GraphView, GraphView]:
        """``(inputs, real)``: the batch as dense views for the layers (standardised when stats are
        set) and as the real parameters, after checking that it fits the model."""
        real = GraphView.of(batch)
        check_compatible(self.spec, real.spec, any_hidden_width=self.any_hidden_width)
        if self.input_stats is None:
            return real, real
        return normalize_view(real, LayerStats.from_stacked(self.input_stats)), real

    def compile_layers(self) -> bool:
        """Compile the model's hot layer stack with ``torch.compile`` (``trainer.compile``);
        False where the model has none worth compiling (it then runs eagerly)."""
        return False

    def view(self, batch: Graph) -> GraphView:
        """The batch as the layers see it (see :meth:`views`)."""
        return self.views(batch)[0]
