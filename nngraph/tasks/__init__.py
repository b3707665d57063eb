"""Tasks on top of a weight-space encoder: classification and SimCLR (with a linear probe)."""

from nngraph.tasks.classification import ClassificationTask
from nngraph.tasks.simclr import SimCLRTask, linear_probe, nt_xent

__all__ = ["ClassificationTask", "SimCLRTask", "linear_probe", "nt_xent"]
