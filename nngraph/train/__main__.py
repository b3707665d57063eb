"""Command line: ``nngraph-train model=relational_transformer aug=siren_neg`` (also
``python -m nngraph.train ...`` and ``python train.py ...`` in a checkout).

Hydra groups (``configs/``): ``data`` (digits, mnist, fashion_mnist, cifar10, image_folder),
``model`` (relational_transformer, dws, pna, mlp), ``aug`` (none, siren_neg, mixup_align, ...; a
list composes), ``task`` (classification, simclr), ``trainer`` (default, paper), ``logger`` (none,
wandb). Everything of a run goes to its Hydra run directory; ``trainer.resume=RUN_DIR`` continues
one. Several GPUs: ``torchrun --nproc_per_node=N -m nngraph.train ...``.
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from nngraph import config_dir


def _train(cfg: DictConfig) -> None:
    from nngraph.train.run import run

    try:
        run(cfg, HydraConfig.get().runtime.output_dir)
    except (ValueError, FileNotFoundError) as err:  # bad input: say what, not a traceback
        sys.exit(f"nngraph-train: error: {err}")


main = hydra.main(version_base=None, config_path=str(config_dir()), config_name="config")(_train)

if __name__ == "__main__":
    main()
