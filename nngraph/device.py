"""The one device picker: ``"auto"`` (or None) is CUDA when present, else the CPU; a named device
must exist, so a typo or a missing GPU is a clear error before any work."""

from __future__ import annotations

import torch

__all__ = ["pick_device"]


def pick_device(
    name: str | torch.device | None = "auto", *, setting: str = "device"
) -> torch.device:
    """The device called ``name``; ``setting`` names the option in error messages."""
    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"{setting}={name} is not a device; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{setting}={name} but no CUDA device is visible; use auto or cpu")
    return device
