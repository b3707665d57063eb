"""How much of the image a fitted INR's weights carry, under the two SIREN init conventions.

Fits all 1,797 digits (2-16-16-1 SIRENs, the paper's fitting settings) once from DWSNets' init
(every sine layer U(±sqrt(6/fan_in)/w0), as the published INR datasets) and once from Sitzmann et
al.'s (first layer U(±1/fan_in)), then scores a logistic regression (scikit-learn) on the test
split from: the raw weights; the INR's values at 64 random points in [-1, 1]^2 (what probe
features see); the rendered 8x8 image (the ceiling). Also prints how far fitting moved the first
layer from its init, relative to its size. No network, no GPU.
Last line: ``ratio=`` accuracy from the 64 random-point values, DWSNets' init / Sitzmann's.
Run: ``python -m benchmarks.init_readability``.
"""

from __future__ import annotations

import argparse

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from benchmarks._timing import machine
from nngraph.data import load_source
from nngraph.data.store import assign_splits
from nngraph.graph import ArchSpec
from nngraph.inr import coordinate_grid, fit_inrs, mlp_forward, sample_init_params


def probe_accuracy(features: torch.Tensor, labels: torch.Tensor, train: torch.Tensor) -> float:
    """Test accuracy of a standardised logistic regression trained on the ``train`` rows."""
    x = features.double().numpy()
    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegression(max_iter=3000).fit(scaler.transform(x[train]), labels[train])
    return float(clf.score(scaler.transform(x[~train]), labels[~train]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(machine())
    source = load_source("digits")
    spec = ArchSpec((2, 16, 16, 1), activation="sine", w0=30.0, out_offset=0.5)
    train = (assign_splits(source.is_test, 0.1, 0) == 0).numpy()
    test = source.is_test.numpy()
    keep = train | test  # validation items are left out
    labels = source.labels.numpy()
    points = torch.rand(64, 2, generator=torch.Generator().manual_seed(args.seed)) * 2 - 1
    grid = coordinate_grid(8, 8)
    scores = {}
    for init in ("dwsnets", "siren"):
        fitted = fit_inrs(source.images, spec, seed=args.seed, init=init, progress=False)
        gen = torch.Generator().manual_seed(args.seed)
        start = sample_init_params(spec, len(source.images), gen, init)[:, :32]
        moved = (fitted.params[:, :32] - start).norm(dim=1) / start.norm(dim=1)  # first layer
        feats = {
            "raw weights": fitted.params,
            "values at 64 random points": mlp_forward(fitted.params, points, spec).flatten(1),
            "rendered 8x8 image": mlp_forward(fitted.params, grid, spec).flatten(1),
        }
        row = {k: probe_accuracy(v[keep], labels[keep], train[keep]) for k, v in feats.items()}
        scores[init] = row
        print(f"\ninit={init}: {fitted.steps.float().mean():.0f} fitting steps on average, "
              f"median PSNR {fitted.psnr.median():.1f} dB, first layer moved "
              f"{moved.median():.2f} x its init norm (median)")  # fmt: skip
        for name, acc in row.items():
            print(f"  logistic regression on {name:28s} {100 * acc:5.1f}% test")
    key = "values at 64 random points"
    print(f"ratio={scores['dwsnets'][key] / scores['siren'][key]:.2f}")


if __name__ == "__main__":
    main()
