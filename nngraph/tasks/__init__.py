"""Tasks on top of a weight-space encoder: classification, regression of a per-network target and
SimCLR (with a linear probe), on
the :class:`Task` interface the training loop knows; ``TASKS`` maps config names to them."""

from __future__ import annotations

import importlib

from nngraph.tasks.base import EvalData, Evaluation, Task
from nngraph.tasks.classification import ClassificationTask
from nngraph.tasks.regression import RegressionTask
from nngraph.tasks.simclr import SimCLRTask, linear_probe, nt_xent

__all__ = [
    "TASKS",
    "ClassificationTask",
    "EvalData",
    "Evaluation",
    "RegressionTask",
    "SimCLRTask",
    "Task",
    "linear_probe",
    "nt_xent",
    "task_class",
]

#: config name (``task=`` / ``task.name``) -> task class
TASKS: dict[str, type[Task]] = {
    "classification": ClassificationTask,
    "regression": RegressionTask,
    "simclr": SimCLRTask,
}


def task_class(name: str) -> type[Task]:
    """The task called ``name``: a key of ``TASKS`` or a dotted path ``package.module.Class`` to a
    :class:`Task` subclass of your own (no edit to nngraph needed)."""
    if name in TASKS:
        return TASKS[name]
    module, _, attr = name.rpartition(".")
    cls = None
    if module:
        try:
            cls = getattr(importlib.import_module(module), attr, None)
        except ImportError:
            cls = None
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ValueError(
            f"unknown task {name!r}; available: {', '.join(sorted(TASKS))}, or the dotted path "
            "of a nngraph.tasks.Task subclass (task.name=mypackage.tasks.MyTask)"
        )
    return cls
