"""The INR store: one file holding a whole dataset of fitted INRs.

``params[N, P]`` (float32, canonical flat order), ``labels``, ``view`` (which random init of the
same source item), ``source_index``, ``split`` (0 train, 1 val, 2 test), ``psnr`` and the
architecture spec, saved with ``torch.save`` (no pickled objects: plain types and tensors only) and
opened with ``torch.load(weights_only=True, mmap=True)``: one read of the header, tensors
memory-mapped, so a store larger than RAM opens at once.
"""

from __future__ import annotations

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
    "load_store",
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


def params_fingerprint(params: Tensor, spec: ArchSpec) -> dict:
    """Cheap identity of a parameter matrix (size, spec, sums of its first and last rows): the key
    of caches derived from a store (normalisation statistics, alignments)."""
    head, tail = params[:256].double().sum().item(), params[-256:].double().sum().item()
    return {"rows": len(params), "spec": spec.to_dict(), "head": head, "tail": tail}


@dataclass
class INRStore:
    """A dataset of INRs of one architecture; row ``i`` is one fitted network."""

    params: Tensor
    labels: Tensor
    view: Tensor
    source_index: Tensor
    split: Tensor
    psnr: Tensor
    spec: ArchSpec
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.params)
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
        return f"{len(self)} INRs of {self.spec} ({counts}; {views} view(s){quality})"


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
    """Write ``store`` to ``path`` atomically (temporary file, then rename)."""
    _check_plain(store.meta, "meta")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "spec": store.spec.to_dict(),
        "meta": store.meta,
    }
    for name in _TENSORS:
        payload[name] = getattr(store, name).contiguous()
    return atomic_torch_save(payload, path)


def load_store(path: str | os.PathLike, *, mmap: bool = True) -> INRStore:
    """Open an INR store; with ``mmap`` (default) the tensors are memory-mapped, not read."""
    what = "INR store"
    payload = load_torch_file(path, what=what, mmap=mmap)
    hint = "re-create it with `python -m nngraph.fit` or an importer"
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
        return INRStore(
            spec=ArchSpec.from_dict(payload["spec"]),
            meta=payload["meta"],
            **{name: payload[name] for name in _TENSORS},
        )
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path} is an inconsistent INR store: {err}; {hint}") from err


def reconstruct(
    store: INRStore,
    index: int | Tensor,
    *,
    height: int | None = None,
    width: int | None = None,
) -> Tensor:
    """Render INR(s) back to images: ``[H, W, C]`` for one index, ``[n, H, W, C]`` for several.
    The size defaults to the source's image size; any other size samples the INR more finely."""
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
