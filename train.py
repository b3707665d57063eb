"""Train a weight-space model: ``python train.py model=relational_transformer aug=siren_neg``.

The same command as ``nngraph-train`` / ``python -m nngraph.train`` (the config groups are listed
in ``nngraph/train/__main__.py``); kept at the top of the checkout for the quickstart.
"""

from nngraph.train.__main__ import main

if __name__ == "__main__":
    main()
