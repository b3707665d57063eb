"""Atomic writes, checked pickle-free reads of torch files, and exclusive locks on outputs."""

from __future__ import annotations

import errno
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

__all__ = [
    "OutputLock",
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_text",
    "clean_temp_files",
    "describe_error",
    "load_torch_file",
]


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
    """``torch.save`` through :func:`atomic_write`; a full disk is an ``OSError`` naming ``path``
    (torch reports it as a cryptic ``RuntimeError``)."""

    def write(handle: IO) -> None:
        try:
            torch.save(obj, handle)
        except RuntimeError as err:
            if "inline_container" in str(err) or "write" in str(err).lower():
                full = "writing failed (is the disk full?)"
                raise OSError(errno.ENOSPC, full, str(path)) from err
            raise

    return atomic_write(path, write)


def clean_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files :func:`atomic_write` leaves when killed mid-write (call it only
    while holding the folder's :class:`OutputLock`)."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


class OutputLock:
    """An exclusive, non-blocking lock on an output (a run directory, a store being fitted): a
    second process gets a clear error instead of interleaving its writes. Released by
    :meth:`release` or when the process ends (the lock file is removed on release)."""

    def __init__(self, path: str | os.PathLike, what: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle: IO | None = open(self.path, "a+")
        try:
            import fcntl

            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no fcntl (Windows): unlocked
            pass
        except OSError:
            self.handle.close()
            self.handle = None
            raise ValueError(
                f"another nngraph process is using {what} (locked: {self.path}); wait for it "
                "to finish or choose another output"
            ) from None

    def release(self) -> None:
        if self.handle is not None:
            self.path.unlink(missing_ok=True)
            self.handle.close()
            self.handle = None

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """A text file written through :func:`atomic_write`."""
    return atomic_write(path, lambda handle: handle.write(text), mode="w")


def load_torch_file(path: str | os.PathLike, *, what: str = "file", mmap: bool = False) -> Any:
    """``torch.load(weights_only=True)`` that says which file is missing or unreadable, and why."""
    path = Path(path)
    if path.exists() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise ValueError(f"{what} {path} is {kind}: give the path of the file itself")
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err) and "Unsupported class" not in str(err):
            raise ValueError(
                f"{what} {path} is corrupt, truncated or not a torch file (it does not unpickle)"
            ) from None
        raise ValueError(
            f"{what} {path} is not an nngraph file: it holds pickled Python objects, which "
            "nngraph never unpickles (they can run code)"
        ) from None
    except Exception as err:  # torch raises RuntimeError, EOFError, ...
        raise ValueError(
            f"{what} {path} is corrupt, truncated or not a torch file ({type(err).__name__}: "
            f"{str(err).splitlines()[0].split('. ')[0] if str(err) else 'no detail'})"
        ) from err


def describe_error(err: BaseException) -> str:
    """One line for a user: an ``OSError`` names the path and the reason (read-only, full disk,
    permission); anything else is its message."""
    if isinstance(err, OSError) and err.filename is not None:
        reasons = {
            errno.EACCES: "no permission to write there",
            errno.EROFS: "read-only file system",
            errno.ENOSPC: "the disk is full",
        }
        hint = reasons.get(err.errno, err.strerror or str(err))
        return f"cannot write {err.filename}: {hint}"
    return str(err).splitlines()[0] if str(err) else type(err).__name__
