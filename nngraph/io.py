"""Atomic writes and checked, pickle-free reads of torch files."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

__all__ = ["atomic_torch_save", "atomic_write", "atomic_write_text", "load_torch_file"]


def atomic_write(path: str | os.PathLike, write: Callable[[IO], Any], mode: str = "wb") -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, fsync, then rename it over
    ``path``: a reader (or a crash) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through :func:`atomic_write`."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """A text file written through :func:`atomic_write`."""
    return atomic_write(path, lambda handle: handle.write(text), mode="w")


def load_torch_file(path: str | os.PathLike, *, what: str = "file", mmap: bool = False) -> Any:
    """``torch.load(weights_only=True)`` that says which file is missing or unreadable, and why."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        raise ValueError(
            f"{what} {path} is corrupt, truncated or not a torch file ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'})"
        ) from err
