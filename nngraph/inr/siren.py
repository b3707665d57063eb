"""INR modules: a dense MLP described by an :class:`ArchSpec`, and the canonical SIREN.

The state dict layout is DWSNets' (``seq.{i}.weight``, ``seq.{i}.bias``), so INRs from published
datasets load into these modules as they are, and their flattened parameters are in nngraph's
canonical order (``torch.nn.utils.parameters_to_vector`` of the module).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn

from nngraph.graph.activations import apply_activation
from nngraph.graph.spec import ArchSpec

__all__ = ["MLP", "Siren", "sample_init_params"]


class MLP(nn.Module):
    """Dense network ``x -> act(W_1 x + b_1) -> ... -> W_L h + b_L + out_offset`` for any spec.

    A spec with ``activation="sine"`` computes ``sin(w0 * (W x + b))`` and starts from the SIREN
    initialisation, like :class:`Siren`.
    """

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        if spec.family != "mlp":
            raise ValueError(f"MLP builds family 'mlp' specs, got {spec}")
        self.spec = spec
        sizes = spec.layer_sizes
        self.seq = nn.Sequential(*[nn.Linear(a, b) for a, b in itertools.pairwise(sizes)])
        if spec.is_siren:
            self.reset_siren_parameters()

    @torch.no_grad()
    def reset_siren_parameters(self, c: float = 6.0) -> None:
        """SIREN init as in DWSNets' INRs: first layer U(±1/fan_in), hidden sine layers
        U(±sqrt(c/fan_in)/w0), sine-layer biases zero, last layer PyTorch's default."""
        for i, layer in enumerate(self.seq[:-1]):
            fan_in = layer.in_features
            bound = 1.0 / fan_in if i == 0 else math.sqrt(c / fan_in) / self.spec.w0
            layer.weight.uniform_(-bound, bound)
            layer.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        last = len(self.seq) - 1
        for i, layer in enumerate(self.seq):
            x = layer(x)
            if i < last:
                x = apply_activation(x, self.spec.activation, self.spec.w0)
        return x + self.spec.out_offset if self.spec.out_offset else x

    def extra_repr(self) -> str:
        return str(self.spec)


class Siren(MLP):
    """The canonical SIREN INR, as DWSNets defines its MNIST/FMNIST INRs.

    ``n_layers`` linear layers (``in_dim -> hidden_dim -> ... -> out_dim``), ``sin(w0 * (W x + b))``
    after all but the last, ``+ out_offset`` (0.5) on the output. Pass ``spec=`` instead for
    hidden layers of different widths.
    """

    def __init__(
        self,
        in_dim: int = 2,
        hidden_dim: int = 32,
        n_layers: int = 3,
        out_dim: int = 1,
        w0: float = 30.0,
        out_offset: float = 0.5,
        *,
        spec: ArchSpec | None = None,
    ) -> None:
        if spec is None:
            spec = ArchSpec.siren(in_dim, hidden_dim, n_layers, out_dim, w0, out_offset)
        elif not spec.is_siren:
            raise ValueError(f"Siren needs a spec with activation='sine', got {spec}; use MLP")
        super().__init__(spec)


def sample_init_params(spec: ArchSpec, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` independent initialisations ``[n, P]`` drawn as :class:`MLP` draws one: the SIREN init
    for sine specs (see :meth:`MLP.reset_siren_parameters`), PyTorch's ``nn.Linear`` default
    (uniform +-1/sqrt(fan_in) for weights and biases) otherwise. One call, no per-network loop."""
    columns = []
    last = spec.n_layers - 1
    for layer, (n_in, n_out) in enumerate(zip(spec.layer_sizes[:-1], spec.layer_sizes[1:])):
        if spec.is_siren and layer < last:
            bound = 1.0 / n_in if layer == 0 else math.sqrt(6.0 / n_in) / spec.w0
            bias_bound = 0.0
        else:
            bound = bias_bound = 1.0 / math.sqrt(n_in)
        weight = torch.rand(n, n_out * n_in, generator=generator) * (2 * bound) - bound
        bias = torch.rand(n, n_out, generator=generator) * (2 * bias_bound) - bias_bound
        columns += [weight, bias]
    return torch.cat(columns, dim=1)
