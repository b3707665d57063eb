"""Fit many SIRENs at once: one batched forward/backward and one Adam step for every INR together.

Each INR has its own random init and its own loss (a sum of per-INR losses keeps the gradients of
different INRs independent; Adam is elementwise, so every INR follows the trajectory it would follow
alone). INRs that reach the target PSNR leave the batch, so converged INRs stop costing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from nngraph.device import pick_device
from nngraph.graph.spec import ArchSpec
from nngraph.inr.functional import coordinate_grid, mlp_forward
from nngraph.inr.siren import sample_init_params

__all__ = [
    "FitResult", "PointMinibatch", "StopRule", "auto_batch_size", "auto_device",
    "check_fit_arguments", "check_images", "fit_inrs", "fit_rows", "psnr", "psnr_rule",
]  # fmt: skip

auto_device = pick_device  # its old name


@dataclass
class FitResult:
    """Fitted INRs, one row per (image, view), image-major: row ``i * views + v``."""

    params: Tensor  # [M * views, P] float32, canonical order, on the CPU
    psnr: Tensor  # [M * views] float32, dB, of the returned parameters
    steps: Tensor  # [M * views] long, optimisation steps each INR took
    seconds: float

    @property
    def inrs_per_second(self) -> float:
        return len(self.params) / max(self.seconds, 1e-9)


def psnr(mse: Tensor) -> Tensor:
    """PSNR in dB of images in [0, 1] from their mean squared error."""
    return -10.0 * torch.log10(mse.clamp_min(1e-20))


def auto_batch_size(spec: ArchSpec, pixels: int, device: torch.device) -> int:
    """INRs to optimise at once. On a CPU, as many as keep one activation tensor near 4 MB, so the
    sin/cos passes run mostly from cache (benchmarks/fit, 28x28 images, 2 cores: 41 INRs at once,
    5,018 INR-steps/s; 256 at once, 4,452). On a GPU, as many as keep the activation buffers near
    2 GB (at most 4,096)."""
    width = max(spec.layer_sizes[1:])
    if device.type != "cpu":
        hidden = max(1, spec.n_layers - 1)
        return max(1, min(4096, (1 << 27) // (pixels * width * hidden)))
    return max(1, min(4096, (1 << 20) // (pixels * width)))


def check_images(images: Tensor, spec: ArchSpec) -> Tensor:
    """Images as ``[M, H, W, C]`` float32 in [0, 1] that ``spec`` (2-D in, C out) can fit."""
    if not isinstance(images, Tensor):
        raise ValueError(f"images must be a tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise ValueError(
            f"images must be floating point in [0, 1], got {images.dtype} "
            "(divide uint8 images by 255)"
        )
    if images.dim() == 3:
        images = images.unsqueeze(-1)
    if images.dim() != 4 or min(images.shape[:3]) < 1:
        raise ValueError(
            f"images must have shape [M, H, W] or [M, H, W, C], got {tuple(images.shape)}"
        )
    if spec.in_dim != 2:
        raise ValueError(f"image INRs take 2-D coordinates, but {spec} has in_dim={spec.in_dim}")
    if images.shape[-1] != spec.out_dim:
        raise ValueError(
            f"images have {images.shape[-1]} channels but {spec} outputs {spec.out_dim}: make the "
            "last entry of the layer sizes (data.arch.layer_sizes) match the channels"
        )
    if not bool(torch.isfinite(images).all()):
        raise ValueError("images contain NaN or Inf values")
    lo, hi = float(images.min()), float(images.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"images must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
    return images.float()


def check_fit_arguments(views: int, steps: int, batch_size: int, check_every: int) -> None:
    """The counts every batched fit takes, refused before any work when out of range."""
    if views < 1 or steps < 0 or batch_size < 1 or check_every < 1:
        raise ValueError(
            f"need views >= 1, steps >= 0, batch_size >= 1, check_every >= 1; got views={views}, "
            f"steps={steps}, batch_size={batch_size}, check_every={check_every}"
        )


def fit_inrs(
    images: Tensor,
    spec: ArchSpec,
    *,
    views: int = 1,
    steps: int = 1000,
    lr: float = 5e-4,
    target_psnr: float | None = 40.0,
    batch_size: int | None = None,
    check_every: int = 10,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool | tqdm = True,
    init: str = "dwsnets",
) -> FitResult:
    """Fit ``views`` INRs of ``spec`` to each image (``[M, H, W]`` or ``[M, H, W, C]`` in [0, 1]).

    Adam (``lr``, paper: 5e-4) for up to ``steps`` steps (paper: 1,000); an INR stops as soon as its
    PSNR reaches ``target_psnr`` (paper: 40 dB; ``None`` never stops early), checked every
    ``check_every`` steps. ``batch_size`` INRs are optimised at once (``None``: see
    :func:`auto_batch_size`). Inits come from one generator
    seeded with ``seed``, so results do not depend on ``batch_size`` or the device beyond float
    rounding. ``progress`` may be a ``tqdm`` bar to advance (left open) instead of a flag.
    ``init``: the SIREN init convention (:data:`nngraph.inr.siren.INITS`; default DWSNets').
    """
    images = check_images(images, spec)
    dev = pick_device(device, setting="fit.device")
    m, height, width, channels = images.shape
    if batch_size is None:
        batch_size = auto_batch_size(spec, height * width, dev)
    check_fit_arguments(views, steps, batch_size, check_every)
    n = m * views
    # every init drawn up front, so a row's init does not depend on batch_size
    inits = sample_init_params(spec, n, torch.Generator().manual_seed(seed), init)
    coords = coordinate_grid(height, width, device=dev)
    rule = psnr_rule(target_psnr)
    out_params = torch.empty(n, spec.num_params)
    out_psnr = torch.empty(n)
    out_steps = torch.empty(n, dtype=torch.long)
    start = time.perf_counter()
    done_psnr: list[Tensor] = []  # for the progress bar's running median
    own_bar = not isinstance(progress, tqdm)
    bar = (
        tqdm(total=n, unit="INR", desc="fitting INRs", disable=not progress, smoothing=0.1)
        if own_bar
        else progress
    )
    try:
        for lo in range(0, n, batch_size):
            rows = torch.arange(lo, min(lo + batch_size, n))
            init = inits[lo : lo + len(rows)]
            target = images[rows // views].reshape(len(rows), height * width, channels)
            fit_rows(
                init.to(dev), target.to(dev), coords, spec, rows, steps, lr, rule, check_every,
                (out_params, out_psnr, out_steps), bar, done_psnr,
            )  # fmt: skip
    finally:
        if own_bar:
            bar.close()
    return FitResult(out_params, out_psnr, out_steps, time.perf_counter() - start)


class PointMinibatch:
    """A random ``size`` of each row's ``Q`` points per step, the same indices for every row at
    a step (rows own their points, so each still sees a random subset). Seeded: a row's fit does
    not depend on which rows share its batch."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.generator = torch.Generator().manual_seed(seed)

    def take(self, coords: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """This step's points of ``coords [A, Q, d]`` (or shared ``[Q, d]``) and ``target``."""
        q = target.shape[1]
        if self.size >= q:
            return coords, target
        index = torch.randperm(q, generator=self.generator)[: self.size].to(target.device)
        return coords[..., index, :], target[:, index]


@dataclass(frozen=True)
class StopRule:
    """When an INR is done: ``metric(mse [A], residual [A, Q, C], target [A, Q, C]) -> [A]``
    reaching ``threshold`` (``None``: never early). ``name``/``unit`` label the progress bar."""

    metric: Callable[[Tensor, Tensor, Tensor], Tensor]
    threshold: float | None
    name: str
    unit: str = ""
    needs_residual: bool = False


def psnr_rule(target_psnr: float | None) -> StopRule:
    """Image INRs: PSNR (dB) of the fit."""
    return StopRule(lambda mse, _r, _t: psnr(mse), target_psnr, "psnr", "dB")


def fit_rows(
    params: Tensor,
    target: Tensor,
    coords: Tensor,
    spec: ArchSpec,
    rows: Tensor,
    steps: int,
    lr: float,
    stop: StopRule,
    check_every: int,
    out: tuple[Tensor, Tensor, Tensor],
    bar: tqdm,
    done: list[Tensor],
    minibatch: PointMinibatch | None = None,
) -> None:
    """Adam on ``params [A, P]`` (hand-written so finished rows can leave the optimiser state).
    ``coords`` are shared ``[Q, d]`` or per row ``[A, Q, d]``; finished rows write their
    parameters, metric and step count into ``out`` at ``rows``. With a ``minibatch``, steps
    between checks see a random subset of the points; checks (and the last step) see them all."""
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    exp_avg = torch.zeros_like(params)
    exp_avg_sq = torch.zeros_like(params)
    work = _Workspace()
    out_params, out_metric, out_steps = out
    per_row = coords.dim() == 3

    def finish(keep: Tensor, values: Tensor, step: int) -> None:
        gone = ~keep
        idx = rows[gone.cpu()]
        out_params[idx] = params[gone].float().cpu()
        out_metric[idx] = values[gone].float().cpu()
        out_steps[idx] = step
        done.append(values[gone].float().cpu())
        bar.update(int(gone.sum()))
        median = f"{torch.cat(done).median():.{1 if stop.unit else 3}f}{stop.unit}"
        bar.set_postfix({f"median_{stop.name}": median}, refresh=False)

    for step in range(steps + 1):
        last = step == steps
        check = last or (stop.threshold is not None and step % check_every == 0)
        if check or minibatch is None:
            step_coords, step_target = coords, target
        else:
            step_coords, step_target = minibatch.take(coords, target)
        mse, grad, residual = _loss_and_grad(
            params, step_coords, step_target, spec, work,
            keep_residual=check and stop.needs_residual,
        )  # fmt: skip
        if check:
            values = stop.metric(mse, residual, target)
            keep = torch.zeros_like(values, dtype=torch.bool) if last else values < stop.threshold
            if not bool(keep.all()):
                finish(keep, values, step)
                if not bool(keep.any()):
                    return
                params, exp_avg, exp_avg_sq = params[keep], exp_avg[keep], exp_avg_sq[keep]
                target, rows, grad = target[keep], rows[keep.cpu()], grad[keep]
                coords = coords[keep] if per_row else coords
        t = step + 1
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (exp_avg_sq / (1 - beta2**t)).sqrt_().add_(eps)
        params = params.addcdiv(exp_avg, denom, value=-lr / (1 - beta1**t))


def _loss_and_grad(
    params: Tensor,
    coords: Tensor,
    target: Tensor,
    spec: ArchSpec,
    work: _Workspace,
    keep_residual: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Per-INR mean squared error ``[A]``, its gradient ``[A, P]`` (of the sum over INRs) and,
    when asked, the residual ``output - target``."""
    if spec.is_siren:
        return _siren_loss_and_grad(params, coords, target, spec, work, keep_residual)
    leaf = params.detach().requires_grad_(True)
    residual = mlp_forward(leaf, coords, spec) - target
    mse = (residual**2).mean(dim=(1, 2))
    (grad,) = torch.autograd.grad(mse.sum(), leaf)
    return mse.detach(), grad, residual.detach() if keep_residual else None


class _Workspace:
    """Activation buffers reused across steps. Allocating the ~1 MB activation tensors anew every
    step costs page faults (glibc maps blocks that large fresh each time), which measured slower
    than the math itself on 2 cores; a finished INR leaving the batch just shortens the views."""

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def get(self, name: str, rows: int, *shape: int, like: Tensor) -> Tensor:
        key = (name, *shape)  # minibatch and full-set steps keep their own buffers
        buf = self._buffers.get(key)
        if buf is None or buf.shape[0] < rows or buf.device != like.device:
            buf = torch.empty(rows, *shape, dtype=like.dtype, device=like.device)
            self._buffers[key] = buf
        return buf[:rows]


def _siren_loss_and_grad(
    params: Tensor,
    coords: Tensor,
    target: Tensor,
    spec: ArchSpec,
    work: _Workspace | None = None,
    keep_residual: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The same, for SIRENs, with a hand-written backward: ``w0`` folded into the matmuls, ``cos``
    kept from the forward pass, activations in reused buffers. On 2 CPU cores the gradient alone
    ran 4,746 INR-steps/s against autograd's 2,818 (8 INRs at once, 28x28 images)."""
    work = work or _Workspace()
    batch, w0, pixels = params.shape[0], spec.w0, coords.shape[-2]
    layers, offset = [], 0
    for n_in, n_out in zip(spec.layer_sizes[:-1], spec.layer_sizes[1:]):
        weight = params[:, offset : offset + n_out * n_in].view(batch, n_out, n_in)
        offset += n_out * n_in
        layers.append((weight, params[:, offset : offset + n_out]))
        offset += n_out
    h = coords if coords.dim() == 3 else coords.expand(batch, -1, -1)
    inputs, cosines = [h], []
    for i, (weight, bias) in enumerate(layers[:-1]):
        z = work.get(f"z{i}", batch, pixels, weight.shape[1], like=params)
        torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2), beta=w0, alpha=w0, out=z)
        cosines.append(torch.cos(z, out=work.get(f"cos{i}", batch, *z.shape[1:], like=params)))
        h = z.sin_()
        inputs.append(h)
    weight, bias = layers[-1]
    residual = work.get("residual", batch, pixels, weight.shape[1], like=params)
    torch.bmm(h, weight.transpose(1, 2), out=residual)  # bmm + add beats baddbmm for a few outputs
    residual.add_(bias.unsqueeze(1)).add_(spec.out_offset).sub_(target)
    mse = residual.pow(2).mean(dim=(1, 2))
    grads: list[Tensor] = []
    scale = 2.0 / (residual.shape[1] * residual.shape[2])
    if keep_residual:
        delta = torch.mul(residual, scale, out=work.get("delta", *residual.shape, like=params))
    else:
        delta = residual.mul_(scale)  # dL/d(output), in place

    for i in range(len(layers) - 1, -1, -1):
        grads.append(delta.sum(dim=1))  # bias
        if i == 0 and coords.dim() == 2:  # shared coordinates: one broadcast matmul, no expand
            grads.append(torch.matmul(coords.t(), delta).transpose(1, 2).reshape(batch, -1))
        else:
            grads.append(torch.bmm(delta.transpose(1, 2), inputs[i]).view(batch, -1))
        if i > 0:
            scaled = layers[i][0] * w0  # w0 of the sine below, folded into the small matrix
            back = work.get(f"delta{i}", batch, pixels, scaled.shape[2], like=params)
            if scaled.shape[1] == 1:  # one output: an outer product, cheaper as a broadcast
                torch.mul(delta, scaled, out=back)
            else:
                torch.bmm(delta, scaled, out=back)
            delta = back.mul_(cosines[i - 1])
    return mse, torch.cat(grads[::-1], dim=1), residual if keep_residual else None
