"""Activation functions an MLP/SIREN spec may name, as plain tensor functions."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ACTIVATIONS", "apply_activation"]

#: Name -> elementwise function. ``sine`` additionally takes the spec's ``w0``
#: (see :func:`apply_activation`); every other entry ignores it.
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "sine": torch.sin,
    "relu": F.relu,
    "leaky_relu": F.leaky_relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "silu": F.silu,
    "identity": lambda t: t,
}


def apply_activation(pre: Tensor, name: str, w0: float = 30.0) -> Tensor:
    """Apply the named activation; SIREN's sine is ``sin(w0 * pre)`` as in DWSNets' INRs."""
    if name == "sine":
        return torch.sin(w0 * pre)
    return ACTIVATIONS[name](pre)
