"""``python -m nngraph.viz RUN_DIR [--method tsne]``: write a run's figures (training curves,
confusion matrix, test embeddings) as PNGs into the run directory."""

from __future__ import annotations

import argparse
import sys

from nngraph.viz.training import write_run_figures


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m nngraph.viz", description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", help="a train.py run directory (holds metrics.jsonl)")
    ap.add_argument(
        "--method", choices=["pca", "tsne"], default="pca", help="2-D map of embeddings"
    )
    args = ap.parse_args()
    try:
        paths = write_run_figures(args.run_dir, args.method)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"nngraph.viz: error: {err}")
    for p in paths:
        print(p)


if __name__ == "__main__":
    main()
