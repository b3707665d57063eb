"""The resumable part of long builds (INR fitting, the CNN zoo): a folder of finished chunk files
next to the output with a manifest of the settings that made them, and the checks that keep a
cache or a half-finished run from ever being served for other settings or other data."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from nngraph.data.sources import ImageSource
from nngraph.io import atomic_write_text

__all__ = ["settings_diff", "source_fingerprint", "start_parts"]


def start_parts(parts: Path, settings: dict, overwrite: bool) -> None:
    """The folder of chunk files with its manifest: an unfinished run with the same settings is
    resumed, one with other settings is an error (or, with ``overwrite``, discarded)."""
    manifest = parts / "manifest.json"
    if manifest.exists():
        try:
            previous = json.loads(manifest.read_text())
        except ValueError as err:  # cut short or overwritten: its chunks cannot be trusted
            raise ValueError(
                f"{manifest} is damaged ({err}); delete {parts} to start over"
            ) from None
        if previous != settings:
            if not overwrite:
                raise ValueError(
                    f"{parts} holds an unfinished run with other settings "
                    f"({settings_diff(previous, settings)}); delete that folder to start over, or "
                    "re-run with the same settings to resume"
                )
            shutil.rmtree(parts)  # overwrite: the old unfinished run is not this one
    parts.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps(settings, indent=1), manifest)


def source_fingerprint(source: ImageSource) -> str:
    """A digest of the images, labels and split, so a cached output is never served for other
    data."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(source.images.contiguous().numpy().tobytes())
    digest.update(source.labels.contiguous().numpy().tobytes())
    digest.update(source.is_test.contiguous().numpy().tobytes())
    return digest.hexdigest()


def settings_diff(old: Any, new: dict) -> str:
    """``key: old -> new`` for every setting that differs (for the error that refuses a cache)."""
    if not isinstance(old, dict):
        return "no record of its settings"
    return ", ".join(_differences(old, new)) or "none"


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` per differing key; nested settings (dicts on both sides) by subkey."""
    out = []
    for k in sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out
