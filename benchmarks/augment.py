"""A batch of 256 FMNIST-size SIREN graphs (2-32-32-1) through each augmentation: batched on the
graph batch against a per-sample loop in the reference style, in one run.

Batched: ``to_graph_batch`` once, then the augmentation on the whole batch. Per sample: what a
dataset's ``__getitem__`` does in the reference code, one INR at a time on its weight and bias
tensors, then the same ``to_graph_batch``. ``mixup_align`` is timed both with the template cache
(the training-loop path) and pairwise. Last line: the geometric mean of the ratios.
Run: ``python -m benchmarks.augment``.
"""

from __future__ import annotations

import argparse
import math

import torch

from benchmarks._timing import machine, median_seconds
from nngraph.align import align_to_template, weight_matching
from nngraph.augment import build_augmentation
from nngraph.graph import ArchSpec, to_graph_batch
from nngraph.inr import sample_init_params

SIREN = ArchSpec.siren()
RELU = ArchSpec.mlp((2, 32, 32, 1), activation="relu")


def unpack(p: torch.Tensor, spec: ArchSpec) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    ws, bs, o = [], [], 0
    for n_in, n_out in zip(spec.layer_sizes[:-1], spec.layer_sizes[1:]):
        ws.append(p[o : o + n_in * n_out].view(n_out, n_in))
        o += n_in * n_out
        bs.append(p[o : o + n_out])
        o += n_out
    return ws, bs


def pack(ws: list[torch.Tensor], bs: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for pair in zip(ws, bs) for t in pair])


# ---- one INR at a time, reference style (weights and biases as per-layer tensors) -------------
def ref_translate(ws, bs, **_):
    t = torch.empty(ws[0].shape[1]).uniform_(-0.25, 0.25)
    return ws, [bs[0] - ws[0] @ t, *bs[1:]]


def ref_rotate(ws, bs, **_):
    a = math.radians(float(torch.empty(1).uniform_(-30, 30)))
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return [ws[0] @ rot, *ws[1:]], bs


def ref_scale(ws, bs, **_):
    return [ws[0] * float(torch.empty(1).uniform_(0.8, 1.2)), *ws[1:]], bs


def ref_noise(ws, bs, **_):
    def noisy(t):
        return t + torch.randn_like(t) * 0.32 * (t.std(correction=0) + 1e-8)

    return [noisy(w) for w in ws], [noisy(b) for b in bs]


def ref_dropout(ws, bs, **_):
    drop = torch.nn.functional.dropout
    return [drop(w, 0.1) for w in ws], [drop(b, 0.1) for b in bs]


def ref_quantile(ws, bs, **_):
    q = torch.quantile(torch.cat([t.abs().flatten() for t in ws + bs]), float(torch.rand(1)) * 0.1)
    return [torch.where(w.abs() < q, 0.0, w) for w in ws], [
        torch.where(b.abs() < q, 0.0, b) for b in bs
    ]


def ref_siren_neg(ws, bs, **_):
    ws, bs = list(ws), list(bs)
    for i in range(len(ws) - 1):
        s = 1.0 - 2.0 * (torch.rand(bs[i].shape) < 0.5).float()
        ws[i], bs[i], ws[i + 1] = ws[i] * s[:, None], bs[i] * s, ws[i + 1] * s[None, :]
    return ws, bs


def ref_siren_bias(ws, bs, **_):
    ws, bs = list(ws), list(bs)
    for i in range(len(ws) - 1):
        k = torch.randint(-4, 4, bs[i].shape)
        bs[i] = bs[i] + k * math.pi / 30.0
        ws[i + 1] = ws[i + 1] * (1 - 2 * (k % 2)).float()[None, :]
    return ws, bs


def ref_positive_scale(ws, bs, **_):
    ws, bs = list(ws), list(bs)
    for i in range(len(ws) - 1):
        c = torch.exp(torch.empty(bs[i].shape).uniform_(-math.log(2), math.log(2)))
        ws[i], bs[i], ws[i + 1] = ws[i] * c[:, None], bs[i] * c, ws[i + 1] / c[None, :]
    return ws, bs


def ref_permute(ws, bs, **_):
    ws, bs = list(ws), list(bs)
    for i in range(len(ws) - 1):
        p = torch.randperm(len(bs[i]))
        ws[i], bs[i], ws[i + 1] = ws[i][p], bs[i][p], ws[i + 1][:, p]
    return ws, bs


def ref_mixup(ws, bs, partner, **_):
    lam = float(torch.rand(1))
    return [lam * a + (1 - lam) * b for a, b in zip(ws, partner[0])], [
        lam * a + (1 - lam) * b for a, b in zip(bs, partner[1])
    ]


def ref_mixup_perm(ws, bs, partner, **_):
    return ref_mixup(ws, bs, ref_permute(*partner))


def ref_mixup_align(ws, bs, partner, spec, **_):
    other = pack(*partner)
    perms = weight_matching(pack(ws, bs), other, spec)
    pw, pb = list(partner[0]), list(partner[1])
    for i, p in enumerate(perms):
        pw[i], pb[i], pw[i + 1] = pw[i][p], pb[i][p], pw[i + 1][:, p]
    return ref_mixup(ws, bs, (pw, pb))


CASES = [
    ("translate", SIREN, ref_translate), ("rotate", SIREN, ref_rotate), ("scale", SIREN, ref_scale),
    ("gaussian_noise", SIREN, ref_noise), ("dropout", SIREN, ref_dropout),
    ("quantile_dropout", SIREN, ref_quantile), ("siren_neg", SIREN, ref_siren_neg),
    ("siren_bias", SIREN, ref_siren_bias), ("positive_scale", RELU, ref_positive_scale),
    ("permute", SIREN, ref_permute), ("mixup", SIREN, ref_mixup),
    ("mixup_perm", SIREN, ref_mixup_perm), ("mixup_align", SIREN, ref_mixup_align),
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    b = args.batch
    gen = torch.Generator().manual_seed(0)
    data = {s: sample_init_params(s, b, gen) for s in (SIREN, RELU)}
    labels = torch.randint(0, 10, (b,), generator=gen)
    rows = torch.arange(b)
    cache = align_to_template(data[SIREN], SIREN, rounds=1, progress=False)

    print(machine())
    print(f"batch of {b} graphs; median of {args.repeats} (batched) / {max(2, args.repeats // 5)} "
          "(per sample) runs")  # fmt: skip
    print(f"{'augmentation':<24}{'batched ms':>12}{'per-sample ms':>15}{'ratio':>9}")
    ratios = []
    cases = [*CASES, ("mixup_align (pairwise)", SIREN, ref_mixup_align)]
    for name, spec, ref in cases:
        params = data[spec]
        key = name.split(" ")[0]
        aug = build_augmentation(key, num_classes=10, seed=0,
                                 cache=None if "pairwise" in name else cache)  # fmt: skip

        def batched(params=params, spec=spec, aug=aug):
            return aug(to_graph_batch(params, spec, y=labels, idx=rows))

        def per_sample(params=params, spec=spec, ref=ref):
            partners = torch.randperm(b)
            out = []
            for i in range(b):
                ws, bs = unpack(params[i], spec)
                partner = unpack(params[int(partners[i])], spec)
                out.append(pack(*ref(ws, bs, partner=partner, spec=spec)))
            return to_graph_batch(torch.stack(out), spec)

        fast = median_seconds(batched, args.repeats, warmup=1)
        slow = median_seconds(per_sample, max(2, args.repeats // 5), warmup=1)
        ratios.append(slow / fast)
        print(f"{name:<24}{fast * 1e3:>12.2f}{slow * 1e3:>15.1f}{slow / fast:>9.1f}")

    def geomean(values: list[float]) -> float:
        return math.exp(sum(math.log(v) for v in values) / len(values))

    # the mixup_align rows pit a cache gather (or the same scipy code) against per-pair matching;
    # the figure on the last line leaves them out, so no single row carries the mean
    plain = ratios[: len(CASES) - 1]
    print(f"geometric mean, all {len(ratios)} rows: {geomean(ratios):.1f}")
    print(f"geometric mean without the two mixup_align rows ({len(plain)} rows):")
    print(f"ratio={geomean(plain):.1f}")


if __name__ == "__main__":
    main()
