"""Train a weight-space model: ``python train.py model=relational_transformer aug=siren_neg``.

Hydra groups (``nngraph/configs``): ``data`` (digits, mnist, fashion_mnist, cifar10, image_folder),
``model`` (relational_transformer, dws, pna, mlp), ``aug`` (none, siren_neg, mixup_align, ...; a
list composes), ``task`` (classification, simclr), ``trainer`` (default, paper), ``logger`` (none,
wandb). Everything of a run goes to its Hydra run directory; ``trainer.resume=RUN_DIR`` continues
one. Several GPUs: ``torchrun --nproc_per_node=N train.py ...``.
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from nngraph.train.run import run


@hydra.main(version_base=None, config_path="nngraph/configs", config_name="config")
def main(cfg: DictConfig) -> None:
    run_dir = HydraConfig.get().runtime.output_dir
    try:
        run(cfg, run_dir)
    except (ValueError, FileNotFoundError) as err:  # bad input: say what, not a traceback
        sys.exit(f"train.py: error: {err}")


if __name__ == "__main__":
    main()
