"""Where a run's numbers go: ``metrics.jsonl`` in the run directory always, Weights & Biases when
asked (offline unless ``logger.mode=online``, so never a login prompt)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["MetricsLogger", "json_safe", "summary_table"]


def json_safe(value: Any) -> Any:
    """``value`` with every NaN / Inf float replaced by None: JSON has no NaN (``json.dumps``
    would write a bare ``NaN`` that strict readers reject)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class MetricsLogger:
    """Appends one JSON object per line to ``metrics.jsonl``; mirrors to wandb if configured."""

    def __init__(
        self, run_dir: Path, config: dict[str, Any], logger: dict[str, Any] | None = None
    ) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.wandb = None
        logger = logger or {}
        if logger.get("name", "none") == "wandb":
            os.environ.setdefault("WANDB_SILENT", "true")
            import wandb

            mode = logger.get("mode", "offline")
            if mode not in ("offline", "online", "disabled"):
                raise ValueError(f"logger.mode must be offline, online or disabled, got {mode!r}")
            self.wandb = wandb.init(
                project=logger.get("project", "nngraph"),
                name=logger.get("run_name"),
                mode=mode,
                dir=str(run_dir),
                config=config,
                reinit=True,
            )

    def log(self, record: dict[str, Any]) -> None:
        record = json_safe(record)
        with self.path.open("a") as f:
            f.write(json.dumps(record, allow_nan=False) + "\n")
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])

    def finish(self, summary: dict[str, Any]) -> None:
        if self.wandb is not None:
            self.wandb.summary.update(summary)
            self.wandb.finish()


def summary_table(summary: dict[str, Any]) -> str:
    """A two-column text table of a run's summary."""
    rows = [(k, f"{v:.4f}" if isinstance(v, float) else str(v)) for k, v in summary.items()]
    width = max(len(k) for k, _ in rows)
    line = "-" * (width + 2 + max(len(v) for _, v in rows))
    return "\n".join([line, *(f"{k:<{width}}  {v}" for k, v in rows), line])


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (skipping a torn last line of a killed run)."""
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
