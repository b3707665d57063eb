"""Checkpoints that resume a run exactly: model, optimizer, scheduler, step, RNG states, written
atomically and read back with ``weights_only=True``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from nngraph.io import atomic_torch_save, load_torch_file

__all__ = ["FORMAT", "load_checkpoint", "resolve_checkpoint", "save_checkpoint"]

FORMAT = "nngraph.checkpoint"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors, plain containers, numbers, strings) to ``path`` atomically."""
    return atomic_torch_save({"format": FORMAT, **state}, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (no pickled code is run)."""
    state = load_torch_file(path, what="checkpoint")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an nngraph checkpoint")
    return state


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A run directory (its ``last.pt``) or a checkpoint file."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "last.pt"
    if not p.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {p}: pass trainer.resume=RUN_DIR (with last.pt) or a .pt file"
        )
    return p


def rng_state(device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
