"""Training: the :class:`Trainer` loop (any task), its settings and data, and ``run(cfg, run_dir)``,
which builds them from a config. ``python -m nngraph.train`` / ``nngraph-train`` is the command."""

from nngraph.train.trainer import TrainData, Trainer, TrainerSettings

__all__ = ["TrainData", "Trainer", "TrainerSettings", "run"]


def __getattr__(name: str):
    if name == "run":  # lazily: run imports the builders, which import this package
        from nngraph.train.run import run

        return run
    raise AttributeError(name)
