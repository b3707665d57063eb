"""Align every INR of a dataset once to a shared template and keep the permutations.

With each row ``i`` aligned to the template by ``pi_i``, row ``j`` aligned to row ``i`` is
``relabel(j, pi_j then pi_i^-1)``: aligned MixUp in the training loop becomes a gather.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from nngraph.align.weight_matching import apply_alignment, signed_weight_matching, weight_matching
from nngraph.data.store import INRStore, params_fingerprint
from nngraph.graph.spec import ArchSpec
from nngraph.io import atomic_torch_save, load_torch_file

__all__ = [
    "AlignmentCache",
    "align_to_template",
    "cached_alignment",
    "fingerprint",
]

fingerprint = params_fingerprint  # the cache key of stores, kept under its old name


@dataclass
class AlignmentCache:
    """``perms[k][i]`` relabels row ``i``'s hidden layer ``k`` into the template's frame."""

    perms: list[Tensor]  # one [N, n_k] long tensor per hidden layer
    template: Tensor  # [P]
    spec: ArchSpec
    fingerprint: dict
    signs: list[Tensor] | None = None  # [N, n_k] +-1 per hidden layer, for signed alignment

    def __len__(self) -> int:
        return len(self.perms[0]) if self.perms else 0

    def perms_for(self, rows: Tensor) -> list[Tensor]:
        """Template permutations of the given rows, ``[B, n_k]`` per hidden layer."""
        rows = rows.long().cpu()
        if len(rows) and (int(rows.max()) >= len(self) or int(rows.min()) < 0):
            raise ValueError(f"rows out of range for an alignment cache of {len(self)} INRs")
        return [p[rows] for p in self.perms]

    def signs_for(self, rows: Tensor) -> list[Tensor]:
        """Template signs of the given rows (a cache built with ``signed=True``)."""
        if self.signs is None:
            raise ValueError("this alignment cache was built without signs (signed=False)")
        self.perms_for(rows)  # range check
        return [s[rows.long().cpu()] for s in self.signs]

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_torch_save(
            {"format": "nngraph.alignment", "perms": self.perms, "template": self.template,
             "spec": self.spec.to_dict(), "fingerprint": self.fingerprint, "signs": self.signs},
            path,
        )  # fmt: skip

    @classmethod
    def load(cls, path: str | os.PathLike) -> AlignmentCache:
        payload = load_torch_file(path, what="alignment cache")
        if not isinstance(payload, dict) or payload.get("format") != "nngraph.alignment":
            raise ValueError(f"{path} is not an nngraph alignment cache")
        return cls(payload["perms"], payload["template"], ArchSpec.from_dict(payload["spec"]),
                   payload["fingerprint"], payload.get("signs"))  # fmt: skip


def align_to_template(
    params: Tensor,
    spec: ArchSpec,
    *,
    rounds: int = 2,
    template_row: int = 0,
    max_iter: int = 100,
    signed: bool = False,
    progress: bool = True,
) -> AlignmentCache:
    """Weight-match every row of ``params [N, P]`` to a template: row ``template_row`` in the first
    round, then the mean of the rows as aligned by the round before (a better-centred template).
    ``signed`` matches neuron negations too (see ``signed_weight_matching``)."""
    if rounds < 1 or params.dim() != 2 or not 0 <= template_row < len(params):
        raise ValueError(f"align_to_template needs rounds >= 1 and a template_row inside params "
                         f"[N, P]; got rounds={rounds}, template_row={template_row}, params "
                         f"{tuple(params.shape)}")  # fmt: skip
    params = params.detach()
    template = params[template_row].clone().float()
    perms: list[Tensor] = []
    signs: list[Tensor] | None = None
    layers = range(spec.n_layers - 1)
    for r in range(rounds):
        per_row = []
        for row in tqdm(params, desc=f"aligning to template ({r + 1}/{rounds})", unit="INR",
                        disable=not progress):  # fmt: skip
            if signed:
                per_row.append(signed_weight_matching(template, row, spec, max_iter=max_iter))
            else:
                per_row.append((weight_matching(template, row, spec, max_iter=max_iter), None))
        perms = [torch.stack([p[0][k] for p in per_row]) for k in layers]
        signs = [torch.stack([p[1][k] for p in per_row]) for k in layers] if signed else None
        if r + 1 < rounds:
            aligned_sum = torch.zeros(spec.num_params, dtype=torch.float64)
            for lo in range(0, len(params), 4096):
                part = slice(lo, lo + 4096)
                block_signs = [s[part] for s in signs] if signs is not None else None
                block_perms = [p[part] for p in perms]
                block = apply_alignment(params[part].float(), block_perms, spec, block_signs)
                aligned_sum += block.double().sum(0)
            template = (aligned_sum / len(params)).float()
    return AlignmentCache(perms, template, spec, fingerprint(params, spec), signs)


def cached_alignment(
    store: INRStore, store_path: str | os.PathLike, *, signed: bool = False,
    write: bool = True, progress: bool = True,
) -> AlignmentCache:  # fmt: skip
    """The store's alignment to a template, cached beside it (``<store>.align[_signed].pt``) and
    recomputed when the store changed; ``write=False`` (non-main processes) never writes, and a
    read-only folder only costs the recomputation next time."""
    store_path = Path(store_path)
    suffix = ".align_signed.pt" if signed else ".align.pt"
    cache_path = store_path.with_name(store_path.stem + suffix)
    if cache_path.exists():
        cache = AlignmentCache.load(cache_path)
        if cache.fingerprint == store.fingerprint():
            return cache
    if progress:
        print(f"nngraph: aligning the store to a template once -> {cache_path}")
    cache = align_to_template(store.params, store.spec, signed=signed, progress=progress)
    if write:
        try:
            cache.save(cache_path)
        except OSError as err:
            print(f"nngraph: cannot cache {cache_path.name} beside the store ({err}); continuing")
    return cache
