"""Train many small CNNs at once, each with its own hyperparameters, keeping checkpoints.

All ``M`` networks live in one parameter matrix ``[M, P]``; one step is one batched forward
(:func:`cnn_forward`), one backward and one AdamW update whose learning rate and weight decay are
per row. Each network draws its minibatches from its own subset of the training images (its data
fraction), with its own share of labels replaced at random (label noise), and trains for its own
number of epochs (its row stops moving after that). Checkpoints are kept at fixed fractions of
each run, so one run gives networks at several stages of training.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from nngraph.graph.spec import ArchSpec
from nngraph.zoo.functional import cnn_forward, cnn_init

__all__ = ["HYPERPARAMETERS", "ZooResult", "evaluate", "sample_hyperparameters", "train_zoo"]

#: Per-run hyperparameters and how they are drawn: ("log", lo, hi) log-uniform, ("uniform", lo,
#: hi), ("int", lo, hi) integers in [lo, hi].
HYPERPARAMETERS = {
    "lr": ("log", 1e-3, 2e-2),
    "weight_decay": ("log", 1e-5, 1e-1),
    "init_scale": ("log", 0.5, 2.0),
    "epochs": ("int", 3, 15),
    "label_noise": ("uniform", 0.0, 0.5),
    "data_fraction": ("uniform", 0.05, 1.0),
}


@dataclass
class ZooResult:
    """``params [M, K, P]`` at each run's ``K`` checkpoints, and the epoch each was taken at."""

    params: Tensor
    epoch: Tensor  # [M, K] float
    seconds: float


def sample_hyperparameters(
    runs: int, ranges: dict[str, tuple] | None = None, *, seed: int = 0
) -> dict[str, Tensor]:
    """``runs`` draws of every hyperparameter in ``ranges`` (default :data:`HYPERPARAMETERS`)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, (kind, lo, hi) in (ranges or HYPERPARAMETERS).items():
        u = torch.rand(runs, generator=gen, dtype=torch.float64)
        if kind == "log":
            out[name] = torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))).float()
        elif kind == "uniform":
            out[name] = (lo + u * (hi - lo)).float()
        elif kind == "int":
            out[name] = (lo + (u * (hi - lo + 1)).floor().clamp(max=hi - lo)).long()
        else:
            raise ValueError(f"hyperparameter {name}: unknown kind {kind!r}; use log/uniform/int")
    return out


def _run_data(
    labels: Tensor, hyper: dict[str, Tensor], num_classes: int, gen: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Per run: a random order of the training images whose first ``size`` are its subset, the
    subset sizes, and its labels with its share of noise."""
    m, n = len(hyper["lr"]), len(labels)
    order = torch.rand(m, n, generator=gen).argsort(dim=1)
    sizes = (hyper["data_fraction"] * n).round().long().clamp(1, n)
    noisy = torch.rand(m, n, generator=gen) < hyper["label_noise"].view(-1, 1)
    random_labels = torch.randint(0, num_classes, (m, n), generator=gen)
    run_labels = torch.where(noisy, random_labels, labels.view(1, -1))
    return order, sizes, run_labels


def train_zoo(
    images: Tensor,
    labels: Tensor,
    spec: ArchSpec,
    hyper: dict[str, Tensor],
    *,
    batch_size: int = 32,
    checkpoints: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0),
    seed: int = 0,
    progress: bool | tqdm = True,
) -> ZooResult:
    """Train ``M = len(hyper["lr"])`` CNNs of ``spec`` on ``images [N, C, H, W]`` / ``labels``;
    an epoch is ``ceil(N / batch_size)`` steps for every run, whatever its data fraction.

    Runs are trained longest first, so the runs still going are always the first rows and a
    step computes only those: the shortest runs stop costing anything when they end."""
    if not all(0 < c <= 1 for c in checkpoints) or int(hyper["epochs"].min()) < 1:
        raise ValueError(f"need checkpoints in (0, 1] and epochs >= 1; got {checkpoints}, "
                         f"epochs from {int(hyper['epochs'].min())}")  # fmt: skip
    gen = torch.Generator().manual_seed(seed)  # on the CPU: the same zoo on any device
    dev = images.device
    hyper = {k: v.cpu() for k, v in hyper.items()}
    m = len(hyper["lr"])
    params = cnn_init(spec, hyper["init_scale"], generator=gen)
    order, sizes, run_labels = _run_data(labels.cpu(), hyper, spec.out_dim, gen)
    per_epoch = math.ceil(len(images) / batch_size)
    total = hyper["epochs"] * per_epoch  # [M] steps of each run
    by_length = torch.sort(total, descending=True, stable=True).indices  # row r is run by_length[r]
    params = params[by_length].to(dev).requires_grad_()
    order, run_labels = order[by_length].to(dev), run_labels[by_length].to(dev)
    sizes, total = sizes[by_length], total[by_length]
    ck_step = (total.view(-1, 1) * torch.tensor(checkpoints).view(1, -1)).round().long()
    ck_step = ck_step.clamp(min=1)  # [M, K]
    kept = torch.empty(m, len(checkpoints), params.shape[1])  # on the CPU, in run order
    opt = _AdamW(params, hyper["lr"][by_length].view(-1, 1).to(dev),
                 hyper["weight_decay"][by_length].view(-1, 1).to(dev))  # fmt: skip
    start = time.perf_counter()
    bar = progress if isinstance(progress, tqdm) else None
    steps, shown = int(total.max()), None
    with tqdm(total=steps, desc="training the zoo", unit="step", disable=progress is False
              or bar is not None) as own:  # fmt: skip
        for step in range(1, steps + 1):
            live = int((total >= step).sum())  # the runs not yet ended: rows [0, live)
            if bar is None and live != shown:
                shown = live
                own.set_postfix_str(f"{live} runs going", refresh=False)
            draw = torch.rand(m, batch_size, generator=gen)[by_length[:live]]  # in run order
            pick = (draw * sizes[:live].view(-1, 1)).long()
            rows = order[:live].gather(1, pick.to(dev))  # [live, B] image indices, own subsets
            running = params[:live]
            logits = cnn_forward(running, images[rows], spec)
            target = run_labels[:live].gather(1, rows)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
            (grad,) = torch.autograd.grad(loss * live, running)  # each run's own mean loss
            opt.step(grad)
            hit = (ck_step[:live] == step).nonzero()
            if len(hit):
                snapshot = params.detach()[hit[:, 0].to(dev)].to(kept.device)
                kept[by_length[hit[:, 0]], hit[:, 1]] = snapshot
            (bar or own).update(1)
    epoch = torch.empty(m, len(checkpoints))
    epoch[by_length] = ck_step.float() / per_epoch
    return ZooResult(kept, epoch, time.perf_counter() - start)


class _AdamW:
    """AdamW on a ``[M, P]`` matrix with per-row learning rate and weight decay; a step that
    gets the gradient of the first ``L`` rows moves those rows only. ``L`` may only shrink from
    step to step (rows that stop never restart), so every row still moving has taken every step
    and one step count serves all of them."""

    def __init__(self, params: Tensor, lr: Tensor, wd: Tensor, betas=(0.9, 0.999), eps=1e-8):
        self.p, self.lr, self.wd, self.betas, self.eps = params, lr, wd, betas, eps
        self.m1 = torch.zeros_like(params.detach())
        self.m2 = torch.zeros_like(params.detach())
        self.t = 0

    @torch.no_grad()
    def step(self, grad: Tensor) -> None:
        b1, b2 = self.betas
        self.t += 1
        n = len(grad)
        p, m1, m2, lr = self.p[:n], self.m1[:n], self.m2[:n], self.lr[:n]
        m1.lerp_(grad, 1 - b1)
        m2.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = (m2 / (1 - b2**self.t)).sqrt_().add_(self.eps)
        p.mul_(1 - lr * self.wd[:n])  # decoupled weight decay
        p.sub_(m1.div(denom).mul_(lr / (1 - b1**self.t)))


@torch.no_grad()
def evaluate(
    params: Tensor, images: Tensor, labels: Tensor, spec: ArchSpec, *, models_per_chunk: int = 64
) -> dict[str, Tensor]:
    """Accuracy and mean cross-entropy ``[M]`` of each of ``params [M, P]`` on ``images``."""
    acc, loss = [], []
    for lo in range(0, len(params), models_per_chunk):
        logits = cnn_forward(params[lo : lo + models_per_chunk], images, spec)
        target = labels.view(1, -1).expand(logits.shape[0], -1)
        acc.append((logits.argmax(-1) == target).float().mean(1))
        ce = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")
        loss.append(ce.mean(1))
    return {"accuracy": torch.cat(acc), "loss": torch.cat(loss)}
