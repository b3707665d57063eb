"""Command-line inputs the benchmarks share, checked before any work: counts that must be
positive, and a zoo store that must exist, open and be a CNN zoo (one line each, no traceback)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nngraph.data.store import INRStore, load_store


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 1 (argparse prints the one-line usage error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: it must be at least 1")
    return value


def open_zoo(path: Path) -> INRStore:
    """The CNN zoo store at ``path``, or ``SystemExit`` with one line saying what to do."""
    if not path.exists():
        raise SystemExit(f"no zoo at {path}: build it first with `python -m nngraph.zoo`")
    try:
        store = load_store(path)
    except (ValueError, OSError) as err:
        raise SystemExit(f"cannot open the zoo: {err}") from None
    if store.meta.get("kind") != "cnn_zoo" or "zoo" not in store.meta:
        raise SystemExit(f"{path} is not a CNN zoo (no zoo settings in it): pass a store made "
                         "by `python -m nngraph.zoo`")  # fmt: skip
    return store
