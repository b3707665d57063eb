"""Command line: fit an INR dataset. ``nngraph-fit data=digits data.views=10`` (also
``python -m nngraph.fit ...``; ``torchrun --nproc_per_node=N -m nngraph.fit ...`` splits the
chunks across N processes, one per GPU, and gives the store one process would make).

Options (Hydra overrides, ``configs/fit.yaml``): ``data=<name>`` (images: digits, mnist,
fashion_mnist, cifar10, image_folder; 3-D shapes as signed distances: shapes, mesh_folder,
modelnet40) with ``data.root=...``; ``data.views`` or ``fit.views`` (INRs per item);
``fit.steps``, ``fit.lr``, ``fit.target_psnr`` (images), ``fit.target_sign`` (shapes),
``fit.init`` (dwsnets | siren), ``fit.subset=N`` (a seeded random N items of each split, for a
quick look), ``fit.out=PATH``, ``fit.device=cpu|cuda|auto``, ``fit.overwrite=true``. Re-running
an interrupted command resumes it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from nngraph import config_dir
from nngraph.builders import build_source, check_settings, data_spec, fit_options
from nngraph.data.build import build_store, default_store_path
from nngraph.data.store import INRStore
from nngraph.device import pick_device
from nngraph.io import describe_error
from nngraph.train.distributed import setup_distributed, teardown_distributed

__all__ = ["main", "run_fit"]


def run_fit(cfg: DictConfig) -> tuple[INRStore, Path]:
    """Fit the configured source into a store; returns it and where it was written."""
    check_settings(cfg)  # every setting in range before any work or write
    fit, options = cfg.fit, fit_options(cfg)
    source = build_source(cfg)
    if fit.subset:
        source = source.subset(int(fit.subset))
    out = Path(fit.out) if fit.out else default_store_path(
        cfg.data_dir, cfg.data.name, options["views"], fit.subset
    )  # fmt: skip
    dist = setup_distributed(pick_device(str(fit.device), setting="fit.device").type)
    try:
        store = build_store(
            source, data_spec(cfg), out, progress=bool(fit.progress), dist=dist, **options
        )
    finally:
        teardown_distributed()
    return store, out


def _fit(cfg: DictConfig) -> None:
    try:
        store, out = run_fit(cfg)
    except (ValueError, OSError) as err:  # bad input, unwritable output: say what, no traceback
        sys.exit(f"nngraph-fit: error: {describe_error(err)}")
    if int(os.environ.get("RANK", "0")) != 0:
        return  # the main process reports
    seconds = store.meta.get("fit_seconds", float("nan"))
    print(f"{out}: {store.summary()}")
    print(f"fitting took {seconds:.1f} s ({len(store) / max(seconds, 1e-9):.0f} INRs/s)")


main = hydra.main(version_base=None, config_path=str(config_dir()), config_name="fit")(_fit)

if __name__ == "__main__":
    main()
