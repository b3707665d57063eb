"""Command line: build a CNN model zoo. ``python -m nngraph.zoo`` (digits, 400 runs x 5
checkpoints); ``zoo.runs=...``, ``data=mnist data.root=...``, ``zoo.out=PATH``; see
``configs/zoo/default.yaml``. Re-running an interrupted command resumes it."""

from __future__ import annotations

import sys

import hydra
import torch
from omegaconf import DictConfig

from nngraph import config_dir
from nngraph.builders import build_zoo_store
from nngraph.io import describe_error
from nngraph.train.allocator import keep_freed_memory


def _zoo(cfg: DictConfig) -> None:
    keep_freed_memory()  # each step reuses warm pages (about 1.2x here; train.py does it too)
    try:
        store, out = build_zoo_store(cfg)
    except (ValueError, OSError) as err:  # bad input, unwritable output: say what, no traceback
        sys.exit(f"nngraph-zoo: error: {describe_error(err)}")
    if len(store) == 0:  # only a zoo written before empty zoos were refused
        sys.exit(f"nngraph-zoo: error: {out} holds no CNNs (all diverged); rebuild it with "
                 "zoo.overwrite=true and a lower zoo.hyperparameters.lr")  # fmt: skip
    acc = store.columns["test_accuracy"] * 100
    seconds = store.meta.get("zoo_seconds", float("nan"))
    print(f"{out}: {len(store)} CNN checkpoints of {store.spec} from {store.meta['zoo']['runs']} "
          f"runs ({store.meta['diverged']} diverged, left out)")  # fmt: skip
    q = torch.quantile(acc.float(), torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0])).tolist()
    print(f"test accuracy %: min {q[0]:.1f}, 10th {q[1]:.1f}, median {q[2]:.1f}, 90th {q[3]:.1f}, "
          f"max {q[4]:.1f}; training took {seconds:.0f} s")  # fmt: skip


main = hydra.main(version_base=None, config_path=str(config_dir()), config_name="zoo")(_zoo)

if __name__ == "__main__":
    main()
