"""Input checks that name what is wrong: non-finite parameters, wrong parameter-vector sizes."""

from __future__ import annotations

import bisect

import torch
from torch import Tensor

from nngraph.graph.spec import ArchSpec

__all__ = ["check_finite", "check_params_shape", "param_key"]


def param_key(spec: ArchSpec, index: int) -> str:
    """The state-dict key (``seq.1.weight``) of flat parameter ``index``."""
    shapes = spec.param_shapes
    ends, total = [], 0
    for _, shape in shapes:
        total += int(torch.Size(shape).numel())
        ends.append(total)
    return shapes[bisect.bisect_right(ends, index)][0]


def check_params_shape(params: Tensor, spec: ArchSpec) -> None:
    """Raise ``ValueError`` unless ``params`` is ``[B, P]``, ``P`` the spec's parameter count."""
    if not isinstance(params, Tensor):
        raise ValueError(f"params must be a tensor of shape [B, P], got {type(params).__name__}")
    if params.dim() != 2 or params.shape[1] != spec.num_params:
        raise ValueError(
            f"params must have shape [B, {spec.num_params}] for {spec}, got {tuple(params.shape)}"
        )
    if not params.is_floating_point():
        raise ValueError(f"params must be floating point, got {params.dtype}")


def check_finite(params: Tensor, spec: ArchSpec) -> None:
    """Raise ``ValueError`` naming the first sample and layer with NaN/Inf weights, if any."""
    flat = params.reshape(-1, params.shape[-1])
    bad = ~torch.isfinite(flat)
    if not bool(bad.any()):
        return
    bad_rows = bad.any(dim=1).nonzero().flatten()
    row = int(bad_rows[0])
    col = int(bad[row].nonzero()[0])
    n_nan = int(torch.isnan(flat[row]).sum())
    n_inf = int(torch.isinf(flat[row]).sum())
    where = f"sample {row}: " if flat.shape[0] > 1 else ""
    raise ValueError(
        f"{where}{param_key(spec, col)} holds non-finite values ({n_nan} NaN, {n_inf} Inf in this "
        f"network; {len(bad_rows)} of {flat.shape[0]} networks affected). The network diverged or "
        "the file is corrupt; drop it, or pass validate=False to convert it anyway."
    )
