"""Train a weight-space model: ``python train.py model=relational_transformer aug=siren_neg``.

Training is not built yet (it arrives with the training issue). For now this composes the config,
shows the default data's INR architecture as a neural graph, and exits with status 1.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from nngraph.graph import ArchSpec


@hydra.main(version_base=None, config_path="nngraph/configs", config_name="config")
def main(cfg: DictConfig) -> None:
    print(OmegaConf.to_yaml(cfg))
    spec = ArchSpec.from_dict(OmegaConf.to_container(cfg.data.arch, resolve=True))
    print(f"INR architecture of data={cfg.data.name}: {spec}")
    print(f"  as a neural graph: {spec.num_nodes} nodes, {spec.num_edges} edges")
    sys.exit("nngraph: training is not built yet; train.py gains it with the training issue.")


if __name__ == "__main__":
    main()
