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

__all__ = ["INITS", "MLP", "Siren", "sample_init_params", "siren_weight_bound"]

#: SIREN init conventions: DWSNets' (the published INR datasets') and Sitzmann et al.'s
INITS = ("dwsnets", "siren")


class MLP(nn.Module):
    """Dense network ``x -> act(W_1 x + b_1) -> ... -> W_L h + b_L + out_offset`` for any spec.

    A spec with ``activation="sine"`` computes ``sin(w0 * (W x + b))`` and starts from the SIREN
    initialisation, like :class:`Siren`.
    """

    def __init__(self, spec: ArchSpec, init: str = "dwsnets") -> None:
        super().__init__()
        if spec.family != "mlp":
            raise ValueError(f"MLP builds family 'mlp' specs, got {spec}")
        self.spec = spec
        sizes = spec.layer_sizes
        self.seq = nn.Sequential(*[nn.Linear(a, b) for a, b in itertools.pairwise(sizes)])
        if spec.is_siren:
            self.reset_siren_parameters(init=init)

    @torch.no_grad()
    def reset_siren_parameters(self, c: float = 6.0, init: str = "dwsnets") -> None:
        """SIREN init (see :func:`siren_weight_bound`): sine layers U(±bound), their biases
        zero, the last layer PyTorch's default."""
        for i, layer in enumerate(self.seq[:-1]):
            bound = siren_weight_bound(i, layer.in_features, self.spec.w0, init, c)
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
        init: str = "dwsnets",
    ) -> None:
        if spec is None:
            spec = ArchSpec.siren(in_dim, hidden_dim, n_layers, out_dim, w0, out_offset)
        elif not spec.is_siren:
            raise ValueError(f"Siren needs a spec with activation='sine', got {spec}; use MLP")
        super().__init__(spec, init)


def siren_weight_bound(
    layer: int, fan_in: int, w0: float, init: str = "dwsnets", c: float = 6.0
) -> float:
    """Half-width of the uniform init of sine layer ``layer``'s weights.

    ``"dwsnets"``: ``sqrt(c/fan_in)/w0`` for every sine layer, first included, as DWSNets' ``INR``
    draws them (its ``is_first`` flag is never set) and so as the published MNIST/FMNIST INR
    datasets were made: INRs start as slowly varying functions and fitting has to move the weights,
    so the weights describe the image. ``"siren"``: Sitzmann et al.'s ``U(±1/fan_in)`` for the
    first layer: high frequencies from the start, the first layer barely moves while fitting and
    stays mostly random init (raw weights then say little about the image)."""
    if init not in INITS:
        raise ValueError(f"unknown SIREN init {init!r}; choose one of {', '.join(INITS)}")
    if layer == 0 and init == "siren":
        return 1.0 / fan_in
    return math.sqrt(c / fan_in) / w0


def sample_init_params(
    spec: ArchSpec, n: int, generator: torch.Generator | None = None, init: str = "dwsnets"
) -> Tensor:
    """``n`` independent initialisations ``[n, P]`` drawn as :class:`MLP` draws one: the SIREN init
    ``init`` for sine specs (see :func:`siren_weight_bound`), PyTorch's ``nn.Linear`` default
    (uniform +-1/sqrt(fan_in) for weights and biases) otherwise. One call, no per-network loop."""
    if init not in INITS:
        raise ValueError(f"unknown SIREN init {init!r}; choose one of {', '.join(INITS)}")
    if spec.family == "cnn":  # PyTorch's Conv2d / Linear default
        from nngraph.zoo.functional import cnn_init

        return cnn_init(spec, torch.ones(n), generator=generator)
    if spec.family != "mlp":
        raise ValueError(f"sample_init_params draws mlp and cnn networks, not {spec}")
    columns = []
    last = spec.n_layers - 1
    for layer, (n_in, n_out) in enumerate(zip(spec.layer_sizes[:-1], spec.layer_sizes[1:])):
        if spec.is_siren and layer < last:
            bound = siren_weight_bound(layer, n_in, spec.w0, init)
            bias_bound = 0.0
        else:
            bound = bias_bound = 1.0 / math.sqrt(n_in)
        weight = torch.rand(n, n_out * n_in, generator=generator) * (2 * bound) - bound
        bias = torch.rand(n, n_out, generator=generator) * (2 * bias_bound) - bias_bound
        columns += [weight, bias]
    return torch.cat(columns, dim=1)
