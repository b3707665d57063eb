"""Exporters: an nngraph INR store out to the published formats its importers read.

- :func:`export_dwsnets`: one state dict per INR (``seq.{i}.weight`` ``[out, in]``,
  ``seq.{i}.bias`` ``[out]``, as DWSNets' ``INR`` module names them) under
  ``<out_dir>/<split>/inr_<row>.pth``, and ``splits.json`` ``{"train": {"path": [...], "label":
  [...]}, "val": ..., "test": ...}`` with absolute paths (DWSNets' ``INRDataset`` opens them as
  given). The format has no views: every INR is an item of its own.
- :func:`export_wsa`: ``<out_dir>/<split>/item_<source>/view_<view>.pth`` state dicts that also
  hold their ``label``, and ``splits.json`` ``{"train": [paths], ...}``; paths start with the
  dataset folder's name, as the reference loader re-roots them there.

Rows are written split by split (train, val, test), in store order within a split: the importers
read them back in that order. Neither format records the activation: re-import anything but a
DWSNets SIREN (sine, w0 30, output + 0.5) with ``spec=store.spec``. Every file is written
atomically (temporary file beside it, then a rename).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from nngraph.data.importers import VIEW_PATTERN
from nngraph.data.store import SPLITS, INRStore, load_store
from nngraph.io import atomic_torch_save, atomic_write_text

__all__ = ["export_dwsnets", "export_wsa"]

SPLITS_FILE = "splits.json"


def export_dwsnets(
    store_or_path: INRStore | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    rows: Tensor | None = None,
    progress: bool = True,
) -> Path:
    """Write ``store`` (or only its ``rows``) in the DWSNets format; returns the splits json path.
    Read it back with :func:`nngraph.data.import_dwsnets` or DWSNets' own ``INRDataset``."""
    store, out_dir, rows = _prepare(store_or_path, out_dir, rows, "DWSNets")
    width = len(str(len(store) - 1))
    table: dict[str, dict[str, list]] = {s: {"path": [], "label": []} for s in SPLITS}
    jobs = []
    columns = (rows, store.split[rows], store.labels[rows])
    for row, code, label in zip(*(c.tolist() for c in columns)):
        path = out_dir / SPLITS[code] / f"inr_{row:0{width}d}.pth"
        table[SPLITS[code]]["path"].append(path.as_posix())
        table[SPLITS[code]]["label"].append(label)
        jobs.append((row, path, {}))
    _write_files(store, jobs, "DWSNets", progress)
    return _atomic_write_json(table, out_dir / SPLITS_FILE)


def export_wsa(
    store_or_path: INRStore | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    rows: Tensor | None = None,
    progress: bool = True,
) -> Path:
    """Write ``store`` (or only its ``rows``) in the weight-space-augmentations format (label in
    each state dict, view in the path); returns the ``splits.json`` path."""
    store, out_dir, rows = _prepare(store_or_path, out_dir, rows, "weight-space-augmentations")
    if re.search(VIEW_PATTERN, out_dir.name):
        raise ValueError(
            f"out_dir name {out_dir.name!r} reads as a view number to import_wsa; pick another name"
        )
    columns = (store.split[rows], store.source_index[rows], store.view[rows])
    keys = list(zip(*(c.tolist() for c in columns)))
    if len(set(keys)) != len(keys):
        (split, source, view), _ = Counter(keys).most_common(1)[0]
        raise ValueError(
            f"two rows of the {SPLITS[split]} split are view {view} of source item {source}; "
            "the format keeps one file per (item, view)"
        )
    table: dict[str, list[str]] = {s: [] for s in SPLITS}
    jobs = []
    for row, (split, source, view), label in zip(rows.tolist(), keys, store.labels[rows]):
        rel = Path(SPLITS[split], f"item_{source}", f"view_{view}.pth")
        table[SPLITS[split]].append((Path(out_dir.name) / rel).as_posix())
        jobs.append((row, out_dir / rel, {"label": label.clone()}))  # a 0-d long tensor
    _write_files(store, jobs, "weight-space-augmentations", progress)
    return _atomic_write_json(table, out_dir / SPLITS_FILE)


def _prepare(
    store_or_path: INRStore | str | os.PathLike,
    out_dir: str | os.PathLike,
    rows: Tensor | None,
    fmt: str,
) -> tuple[INRStore, Path, Tensor]:
    """Check everything before any work: the store, the absolute out_dir, and the rows to write,
    split by split (train, val, test)."""
    out_dir = Path(out_dir).resolve()  # absolute, and "." has a name
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {out_dir} exists and is not a directory")
    store = store_or_path if isinstance(store_or_path, INRStore) else load_store(store_or_path)
    if store.spec.family != "mlp":
        raise ValueError(
            f"the {fmt} format holds dense MLPs (seq.<i>.weight/bias), not family "
            f"{store.spec.family!r} ({store.spec})"
        )
    if rows is None:
        rows = torch.arange(len(store))
    rows = torch.as_tensor(rows, dtype=torch.long).flatten()
    if len(rows) == 0:
        raise ValueError(f"nothing to export: no rows selected of the {len(store)} in the store")
    if int(rows.min()) < 0 or int(rows.max()) >= len(store):
        raise ValueError(f"rows must lie in 0..{len(store) - 1}, got {rows.min()}..{rows.max()}")
    if len(rows.unique()) != len(rows):
        raise ValueError("rows lists a row more than once")
    order = torch.sort(store.split[rows], stable=True).indices  # train, val, test
    return store, out_dir, rows[order]


def _write_files(
    store: INRStore, jobs: list[tuple[int, Path, dict]], fmt: str, progress: bool
) -> None:
    """One state dict per ``(row, path, extra entries)``, each written atomically."""
    shapes = store.spec.param_shapes
    for row, path, extra in tqdm(
        jobs, desc=f"exporting {fmt} INRs", unit="INR", disable=not progress
    ):
        flat = store.params[row]
        state_dict, offset = {}, 0
        for key, shape in shapes:
            size = int(torch.Size(shape).numel())
            # clone: torch.save writes a view's whole storage, here the whole store
            state_dict[key] = flat[offset : offset + size].reshape(shape).clone()
            offset += size
        atomic_torch_save({**state_dict, **extra}, path)


def _atomic_write_json(obj: dict, path: Path) -> Path:
    """JSON written atomically (temporary file beside ``path``, then a rename)."""
    return atomic_write_text(json.dumps(obj), path)
