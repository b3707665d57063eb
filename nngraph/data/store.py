"""The store: one file holding a whole dataset of networks (fitted INRs, a CNN zoo).

``params[N, P]`` (float32, canonical flat order), ``labels``, ``view`` (which random init of the
same source item), ``source_index``, ``split`` (0 train, 1 val, 2 test), ``psnr`` (INRs; NaN
elsewhere), named per-row ``columns`` (float targets such as a CNN's test accuracy, and the
hyperparameters it was trained with) and the architecture spec, saved with ``torch.save`` (no
pickled objects: plain types and tensors only) and opened with ``torch.load(weights_only=True,
mmap=True)``: one read of the header, tensors memory-mapped, so a store larger than RAM opens at
once.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nngraph.graph.spec import ArchSpec
from nngraph.inr.functional import coordinate_grid, mlp_forward
from nngraph.io import atomic_torch_save, load_torch_file

__all__ = [
    "SPLITS",
    "INRStore",
    "assign_splits",
    "check_store",
    "load_store",
    "nonfinite_rows",
    "params_digest",
    "params_fingerprint",
    "reconstruct",
    "save_store",
]

FORMAT, VERSION = "nngraph.inr_store", 1
SPLITS = ("train", "val", "test")
_TENSORS = {  # name -> dtype; params is [N, P], the rest [N]
    "params": torch.float32,
    "labels": torch.long,
    "view": torch.long,
    "source_index": torch.long,
    "split": torch.long,
    "psnr": torch.float32,
}


def params_digest(params: Tensor, rows_per_chunk: int = 65536) -> str:
    """SHA-256 of the whole parameter matrix (its float32 bytes, row by row): the identity of a
    store's content. One pass; ``save_store`` records it so opening a store does not repeat it."""
    h = hashlib.sha256()
    for start in range(0, len(params), rows_per_chunk):
        block = params[start : start + rows_per_chunk].detach().float().contiguous().cpu()
        h.update(block.numpy().tobytes())
    return h.hexdigest()


def params_fingerprint(params: Tensor, spec: ArchSpec, digest: str | None = None) -> dict:
    """The key of caches derived from a parameter matrix (normalisation statistics, alignments):
    its size, spec and content digest (``digest`` when known, else computed)."""
    digest = digest or params_digest(params)
    return {"rows": len(params), "spec": spec.to_dict(), "sha256": digest}


def nonfinite_rows(params: Tensor, rows_per_chunk: int = 65536) -> Tensor:
    """Rows of ``params`` holding NaN or Inf (one pass, in chunks)."""
    bad = []
    for start in range(0, len(params), rows_per_chunk):
        block = params[start : start + rows_per_chunk]
        bad.append((~torch.isfinite(block)).any(dim=1).nonzero().flatten() + start)
    return torch.cat(bad) if bad else torch.zeros(0, dtype=torch.long)


def _rows_text(rows: Tensor) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:5])
    return shown + (f", ... ({len(rows)} rows)" if len(rows) > 5 else "")


@dataclass
class INRStore:
    """A dataset of networks of one architecture; row ``i`` is one network. ``psnr`` is for INRs
    (NaN when not given); ``columns`` holds named per-row values, ``[N]`` each (float targets,
    hyperparameters)."""

    params: Tensor
    labels: Tensor
    view: Tensor
    source_index: Tensor
    split: Tensor
    spec: ArchSpec
    psnr: Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.params)
        if self.psnr is None and isinstance(self.params, Tensor):
            self.psnr = torch.full((n,), float("nan"))
        _check_columns(self.columns, n)
        if self.params.dim() != 2 or self.params.shape[1] != self.spec.num_params:
            raise ValueError(
                f"params must be [N, {self.spec.num_params}] for {self.spec}, got "
                f"{tuple(self.params.shape)}"
            )
        for name, dtype in _TENSORS.items():
            value = getattr(self, name)
            if not isinstance(value, Tensor):
                raise ValueError(f"INRStore.{name} must be a tensor, got {type(value).__name__}")
            if name != "params" and value.shape != (n,):
                raise ValueError(f"INRStore.{name} must have shape [{n}], got {tuple(value.shape)}")
            if value.dtype != dtype:
                raise ValueError(f"INRStore.{name} must be {dtype}, got {value.dtype}")
        if n and (int(self.split.min()) < 0 or int(self.split.max()) >= len(SPLITS)):
            raise ValueError(f"INRStore.split holds codes outside 0..{len(SPLITS) - 1} ({SPLITS})")

    def __len__(self) -> int:
        return len(self.params)

    def digest(self) -> str:
        """SHA-256 of ``params`` (read from the file's header when opened with ``load_store``;
        computed once otherwise). Modify a store by making a new one, not in place."""
        cached = self.__dict__.get("_digest")
        if cached is None:
            cached = self.__dict__["_digest"] = params_digest(self.params)
        return cached

    def fingerprint(self) -> dict:
        """The key of caches derived from this store (see :func:`params_fingerprint`)."""
        return params_fingerprint(self.params, self.spec, self.digest())

    @property
    def num_classes(self) -> int:
        names = self.meta.get("class_names")
        return len(names) if names else int(self.labels.max()) + 1

    def indices(self, split: str, views: int | None = None) -> Tensor:
        """Rows of ``split`` ("train" / "val" / "test"), optionally only views ``0..views-1``."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
        mask = self.split == SPLITS.index(split)
        if views is not None:
            mask &= self.view < views
        return mask.nonzero().flatten()

    def summary(self) -> str:
        counts = ", ".join(f"{s} {len(self.indices(s))}" for s in SPLITS)
        views = int(self.view.max()) + 1 if len(self) else 0
        finite = self.psnr[torch.isfinite(self.psnr)]
        quality = f", median PSNR {finite.median():.1f} dB" if len(finite) else ""
        if "sign_agreement" in self.columns and len(self):
            quality = f", median sign agreement {self.columns['sign_agreement'].median():.3f}"
        return f"{len(self)} INRs of {self.spec} ({counts}; {views} view(s){quality})"


def _check_columns(columns: dict[str, Tensor], n: int) -> None:
    if not isinstance(columns, dict):
        raise ValueError(
            f"INRStore.columns must be a dict of tensors, got {type(columns).__name__}"
        )
    for name, value in columns.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"INRStore.columns names must be non-empty strings, got {name!r}")
        if not isinstance(value, Tensor) or value.shape != (n,):
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(
                f"INRStore.columns[{name!r}] must be a tensor of shape [{n}], got {shape}"
            )
        if value.dtype not in (torch.float32, torch.long):
            raise ValueError(
                f"INRStore.columns[{name!r}] must be float32 or int64, got {value.dtype}"
            )


def check_store(store: INRStore, where: str = "the store", *, params: bool = True) -> None:
    """Raise ``ValueError`` naming the problem unless labels lie in ``[0, num_classes)``, no source
    item sits in two splits (train/test leakage), and (``params``) every parameter is finite."""
    hint = "fix the data it was made from and re-create it"
    labels, n_names = store.labels, len(store.meta.get("class_names") or [])
    if len(labels) and int(labels.min()) < 0:
        bad = (labels < 0).nonzero().flatten()
        raise ValueError(f"{where} has negative labels (rows {_rows_text(bad)}); {hint}")
    if n_names and len(labels) and int(labels.max()) >= n_names:
        bad = (labels >= n_names).nonzero().flatten()
        raise ValueError(
            f"{where} has labels >= its {n_names} class names (rows {_rows_text(bad)}); {hint}"
        )
    pairs = torch.unique(torch.stack([store.source_index, store.split]), dim=1)
    if pairs.shape[1] != len(torch.unique(store.source_index)):
        items, counts = torch.unique(pairs[0], return_counts=True)
        leaked = items[counts > 1]
        raise ValueError(
            f"{where} puts views of one source item in two splits (items {_rows_text(leaked)}): "
            f"train and test would share images; {hint}"
        )
    if params:
        bad = nonfinite_rows(store.params)
        if len(bad):
            raise ValueError(f"{where} has NaN or Inf parameters (rows {_rows_text(bad)}); {hint}")


def assign_splits(is_test: Tensor, val_fraction: float = 0.1, seed: int = 0) -> Tensor:
    """Per source item: 2 (test) where the source says test; a seeded ``val_fraction`` of the rest
    becomes 1 (val); everything else 0 (train). Views of an item inherit its split."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    split = torch.where(is_test, 2, 0).long()
    train = (~is_test).nonzero().flatten()
    gen = torch.Generator().manual_seed(seed)
    n_val = round(val_fraction * len(train))
    val = train[torch.randperm(len(train), generator=gen)[:n_val]]
    split[val] = 1
    return split


def save_store(store: INRStore, path: str | os.PathLike) -> Path:
    """Write ``store`` to ``path`` atomically (temporary file, then rename), after checking it
    (finite parameters, labels in range, no split leakage); the content digest goes into the
    header, so opening it later is instant and caches are keyed by content."""
    _check_plain(store.meta, "meta")
    check_store(store, f"the store for {path}")
    digest = params_digest(store.params)
    store.__dict__["_digest"] = digest
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "spec": store.spec.to_dict(),
        "meta": store.meta,
        "checked": {"finite": True, "sha256": digest},
    }
    for name in _TENSORS:
        payload[name] = getattr(store, name).contiguous()
    payload["columns"] = {k: v.contiguous() for k, v in store.columns.items()}
    return atomic_torch_save(payload, path)


def load_store(path: str | os.PathLike, *, mmap: bool = True) -> INRStore:
    """Open an INR store; with ``mmap`` (default) the tensors are memory-mapped, not read."""
    what = "INR store"
    hint = (
        "re-create it with the command that made it (`python -m nngraph.fit` for INRs, "
        "`python -m nngraph.zoo` for a CNN zoo) or an importer"
    )
    try:
        payload = load_torch_file(path, what=what, mmap=mmap)
    except ValueError as err:
        if "corrupt, truncated" not in str(err):
            raise
        raise ValueError(f"{err}; {hint}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an nngraph INR store (no '{FORMAT}' header); {hint}")
    if payload.get("version") != VERSION:
        raise ValueError(
            f"{path} is an INR store of version {payload.get('version')}, this nngraph reads "
            f"version {VERSION}; {hint}"
        )
    missing = [k for k in ("spec", "meta", *_TENSORS) if k not in payload]
    if missing:
        raise ValueError(f"{path} is an incomplete INR store (missing {missing}); {hint}")
    if not isinstance(payload["spec"], dict) or not isinstance(payload["meta"], dict):
        raise ValueError(
            f"{path} is an inconsistent INR store: spec and meta must be dicts; {hint}"
        )
    try:
        store = INRStore(
            spec=ArchSpec.from_dict(payload["spec"]),
            meta=payload["meta"],
            columns=payload.get("columns", {}),  # stores before columns existed have none
            **{name: payload[name] for name in _TENSORS},
        )
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path} is an inconsistent INR store: {err}; {hint}") from err
    checked = payload.get("checked") if isinstance(payload.get("checked"), dict) else {}
    # a store saved by this version was checked when written: only the cheap checks again
    check_store(store, str(path), params=not checked.get("finite"))
    if isinstance(checked.get("sha256"), str):
        store.__dict__["_digest"] = checked["sha256"]
    return store


def reconstruct(
    store: INRStore,
    index: int | Tensor,
    *,
    height: int | None = None,
    width: int | None = None,
) -> Tensor:
    """Render INR(s) back to images: ``[H, W, C]`` for one index, ``[n, H, W, C]`` for several.
    The size defaults to the source's image size; any other size samples the INR more finely."""
    if store.spec.family != "mlp":
        raise ValueError(f"reconstruct renders INRs; this store holds {store.spec} networks")
    if store.meta.get("kind") == "sdf":
        raise ValueError(
            "this store holds signed-distance INRs of 3-D shapes: use "
            "nngraph.viz.reconstruct_mesh / shape_figure to look at them"
        )
    shape = store.meta.get("image_shape")
    if (height is None or width is None) and not shape:
        raise ValueError("the store does not record an image size; pass height= and width=")
    h = int(shape[0]) if height is None else height
    w = int(shape[1]) if width is None else width
    rows = torch.as_tensor(index, dtype=torch.long)
    single = rows.dim() == 0
    rows = rows.flatten()
    params = store.params[rows].float()
    with torch.no_grad():
        out = mlp_forward(params, coordinate_grid(h, w), store.spec)
    images = out.view(len(rows), h, w, store.spec.out_dim)
    return images[0] if single else images


def _check_plain(value: Any, where: str) -> None:
    """Only types ``torch.load(weights_only=True)`` reads back."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where} keys must be strings, got {k!r}")
            _check_plain(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        return
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise ValueError(f"{where} must hold plain str/int/float/bool/list/dict, got {type(value)}")
