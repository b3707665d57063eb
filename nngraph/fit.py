"""Command line: fit an INR dataset. ``python -m nngraph.fit data=digits fit.views=10``.

Options (Hydra overrides): ``data=<name>`` (nngraph/configs/data/: digits, mnist, fashion_mnist,
cifar10, image_folder) with ``data.root=...``; ``fit.views``, ``fit.steps``, ``fit.lr``,
``fit.target_psnr``, ``fit.init`` (dwsnets | siren),
``fit.subset=N`` (a seeded random N images of each split, for a quick look), ``fit.out=PATH``,
``fit.device=cpu|cuda|auto``, ``fit.overwrite=true``. Re-running an interrupted command resumes it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from nngraph.data.build import build_store, default_store_path
from nngraph.data.sources import load_source
from nngraph.data.store import INRStore
from nngraph.graph.spec import ArchSpec


def source_options(data: DictConfig) -> dict:
    """The loader options of a ``data`` config node (everything but name, arch and splits)."""
    try:
        options = OmegaConf.to_container(data, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as err:
        raise ValueError(
            f"data={data.name} needs a value for {err.full_key}: pass it on the command line, "
            f"e.g. python -m nngraph.fit data={data.name} {err.full_key}=/path/to/images"
        ) from None
    return {
        k: v
        for k, v in options.items()
        if k not in {"name", "arch", "val_fraction", "n_views", "path"}
    }


def run_fit(cfg: DictConfig) -> tuple[INRStore, Path]:
    """Fit the configured source into a store; returns it and where it was written."""
    fit = cfg.fit
    source = load_source(cfg.data.name, **source_options(cfg.data))
    if fit.subset:
        source = source.subset(int(fit.subset))
    spec = ArchSpec.from_dict(OmegaConf.to_container(cfg.data.arch, resolve=True))
    out = Path(fit.out) if fit.out else default_store_path(
        cfg.data_dir, cfg.data.name, int(fit.views), fit.subset
    )  # fmt: skip
    batch_size = None if fit.batch_size is None else int(fit.batch_size)
    store = build_store(
        source, spec, out, views=int(fit.views), steps=int(fit.steps), lr=float(fit.lr),
        target_psnr=None if fit.target_psnr is None else float(fit.target_psnr),
        batch_size=batch_size, chunk_size=int(fit.chunk_size), seed=int(fit.seed),
        val_fraction=float(cfg.data.val_fraction), split_seed=int(cfg.data.split_seed),
        device=fit.device, progress=bool(fit.progress), overwrite=bool(fit.overwrite),
        init=str(fit.get("init", "dwsnets")),
    )  # fmt: skip
    return store, out


@hydra.main(version_base=None, config_path="configs", config_name="fit")
def main(cfg: DictConfig) -> None:
    try:
        store, out = run_fit(cfg)
    except (ValueError, FileNotFoundError) as err:  # bad input: say what, not a traceback
        sys.exit(f"nngraph.fit: error: {err}")
    seconds = store.meta.get("fit_seconds", float("nan"))
    print(f"{out}: {store.summary()}")
    print(f"fitting took {seconds:.1f} s ({len(store) / max(seconds, 1e-9):.0f} INRs/s)")


if __name__ == "__main__":
    main()
