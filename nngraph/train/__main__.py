"""Command line: ``nngraph-train model=relational_transformer aug=siren_neg`` (also
``python -m nngraph.train ...`` and ``python train.py ...`` in a checkout).

Hydra groups (``configs/``): ``data`` (digits, mnist, fashion_mnist, cifar10, image_folder),
``model`` (relational_transformer, dws, pna, mlp), ``aug`` (none, siren_neg, mixup_align, ...; a
list composes), ``task`` (classification, simclr), ``trainer`` (default, paper), ``logger`` (none,
wandb). Everything of a run goes to its Hydra run directory; ``trainer.resume=RUN_DIR`` continues
one. Several GPUs: ``torchrun --nproc_per_node=N -m nngraph.train ...``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from nngraph import config_dir
from nngraph.io import describe_error


def _train(cfg: DictConfig) -> None:
    from nngraph.train.run import run

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        run(cfg, run_dir)
    except (ValueError, OSError) as err:  # bad input, unwritable output: say what, no traceback
        _remove_if_unused(run_dir)
        sys.exit(f"nngraph-train: error: {describe_error(err)}")


def _remove_if_unused(run_dir: Path) -> None:
    """A run refused before it wrote anything leaves no directory (Hydra made it, with only its
    own config copy and an empty log)."""
    hydra_only = {".hydra", "train.log", "config.yaml", ".lock"}
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= hydra_only:
        log = run_dir / "train.log"
        if not log.exists() or log.stat().st_size == 0:
            shutil.rmtree(run_dir, ignore_errors=True)


main = hydra.main(version_base=None, config_path=str(config_dir()), config_name="config")(_train)

if __name__ == "__main__":
    main()
