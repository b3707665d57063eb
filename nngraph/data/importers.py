"""Importers: published INR datasets (one state-dict file per INR) into one nngraph INR store.

- DWSNets (``mnist-inrs``, ``fmnist-inrs``): a splits json ``{"train": {"path": [...], "label":
  [...]}, "val": ..., "test": ...}``; each file a state dict ``seq.{i}.weight`` / ``seq.{i}.bias``.
- weight-space-augmentations (``fmnist_multiview``): ``splits.json`` ``{"train": [paths], ...}``;
  each state dict also holds its ``label``; which view an INR is shows in its path (``view_3``,
  ``view3``, ...), and the INRs whose paths differ only there are views of one image.

Paths in a splits file may be absolute paths from the machine that made it: they are tried as
given, relative to the splits file, and re-rooted at the splits file's folder (the part after the
dataset folder's name), as the reference code does.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from nngraph.data.store import SPLITS, INRStore, save_store
from nngraph.graph.spec import ArchSpec, get_family
from nngraph.graph.validate import check_finite
from nngraph.io import load_torch_file

__all__ = ["VIEW_PATTERN", "import_dwsnets", "import_wsa"]

#: The view number in a path: "view_3", "view-3", "view3" as a folder or a file-name part.
VIEW_PATTERN = r"(?:^|[/_.-])views?[_-]?(\d+)(?=$|[/_.-])"


def import_dwsnets(
    splits_json: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    spec: ArchSpec | None = None,
    image_shape: tuple[int, ...] = (28, 28, 1),
    progress: bool = True,
) -> INRStore:
    """Import a DWSNets INR dataset (splits json with ``path`` and ``label`` lists per split)."""
    splits_json = Path(splits_json)
    table = _read_splits(splits_json)
    entries = []
    for split in SPLITS:
        part = table.get(split)
        if part is None:
            continue
        if not isinstance(part, dict) or "path" not in part or "label" not in part:
            raise ValueError(f"{splits_json}: split {split!r} must hold 'path' and 'label' lists")
        if len(part["path"]) != len(part["label"]):
            raise ValueError(
                f"{splits_json}: split {split!r} has {len(part['path'])} paths but "
                f"{len(part['label'])} labels"
            )
        entries += [(split, p, lab) for p, lab in zip(part["path"], part["label"])]
    return _build(splits_json, entries, out, spec, image_shape, progress, "dwsnets", None)


def import_wsa(
    splits_json: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    spec: ArchSpec | None = None,
    image_shape: tuple[int, ...] = (28, 28, 1),
    view_pattern: str = VIEW_PATTERN,
    progress: bool = True,
) -> INRStore:
    """Import a weight-space-augmentations dataset (``splits.json``: a list of paths per split;
    the label inside each state dict under ``"label"``; the view number in the path)."""
    splits_json = Path(splits_json)
    table = _read_splits(splits_json)
    entries = []
    for split in SPLITS:
        paths = table.get(split)
        if paths is None:
            continue
        if not isinstance(paths, list):
            raise ValueError(f"{splits_json}: split {split!r} must be a list of paths")
        entries += [(split, p, None) for p in paths]
    return _build(
        splits_json, entries, out, spec, image_shape, progress, "wsa", re.compile(view_pattern)
    )


def _build(
    splits_json: Path,
    entries: list[tuple[str, str, object]],
    out: str | os.PathLike | None,
    spec: ArchSpec | None,
    image_shape: Iterable[int],
    progress: bool,
    kind: str,
    view_re: re.Pattern | None,
) -> INRStore:
    if not entries:
        raise ValueError(f"{splits_json} lists no INRs under {', '.join(SPLITS)}")
    resolve = _resolver(splits_json)
    rows, labels, views, sources = [], [], [], []
    source_ids: dict[str, int] = {}
    seen = _Seen(splits_json)
    spec_from = "the spec you passed" if spec is not None else None
    for _split, raw_path, label in tqdm(
        entries, desc=f"importing {kind} INRs", unit="INR", disable=not progress
    ):
        path = resolve(raw_path)
        state_dict = load_torch_file(path, what="INR file")
        if not isinstance(state_dict, dict):
            raise ValueError(f"{path}: expected a state dict, got {type(state_dict).__name__}")
        if label is None:
            if "label" not in state_dict:
                raise ValueError(f"{path}: no 'label' entry in the state dict")
            state_dict = dict(state_dict)
            label = state_dict.pop("label")
        label = _label(label, path)
        family = get_family(spec.family if spec is not None else "mlp")
        try:
            if spec is None:
                spec = family.spec_from_state_dict(state_dict)
                spec_from = f"read from the first file, {path.name}"
            params = family.state_dict_to_params(state_dict, spec)
            check_finite(params.unsqueeze(0), spec)
        except ValueError as err:
            where = f"the dataset's architecture is {spec} ({spec_from}" if spec else "("
            raise ValueError(
                f"{path}: {err} ({where}; pass spec= if that is not the right one)"
            ) from err
        view, key = 0, str(raw_path)
        if view_re is not None:
            match = view_re.search(str(raw_path))
            if match:
                view = int(match.group(1))
                key = str(raw_path)[: match.start(1)] + "#" + str(raw_path)[match.end(1) :]
        seen.add(path, key, _split, label)
        sources.append(source_ids.setdefault(key, len(source_ids)))
        rows.append(params.float())
        labels.append(label)
        views.append(view)
    split_codes = torch.tensor([SPLITS.index(s) for s, _, _ in entries])
    store = INRStore(
        params=torch.stack(rows),
        labels=torch.tensor(labels, dtype=torch.long),
        view=torch.tensor(views, dtype=torch.long),
        source_index=torch.tensor(sources, dtype=torch.long),
        split=split_codes,
        psnr=torch.full((len(rows),), float("nan")),
        spec=spec,
        meta={
            "source": f"{kind}:{splits_json.name}",
            "image_shape": [int(s) for s in image_shape],
            "imported_from": str(splits_json),
        },
    )
    if out is not None:
        save_store(store, out)
    return store


def _label(value: object, path: Path) -> int:
    """A class label as an int: an integer (or integer-valued number / 0-d tensor) >= 0."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{path}: the label must be an integer class id, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{path}: the label must be an integer class id, got {value!r}")
    if value < 0:
        raise ValueError(f"{path}: the label must be >= 0, got {value!r}")
    return int(value)


class _Seen:
    """What the splits file listed so far: each file once, each source item (the views of one
    image) in one split and with one label."""

    def __init__(self, splits_json: Path) -> None:
        self.splits_json = splits_json
        self.paths: dict[Path, str] = {}
        self.items: dict[str, tuple[str, int, Path]] = {}

    def add(self, path: Path, key: str, split: str, label: int) -> None:
        where = self.splits_json
        resolved = path.resolve()
        if resolved in self.paths:
            raise ValueError(
                f"{where} lists {path} twice (in {self.paths[resolved]} and {split}): each INR "
                "file may appear once"
            )
        self.paths[resolved] = split
        if key in self.items:
            first_split, first_label, first = self.items[key]
            if first_split != split:
                raise ValueError(
                    f"{where} puts views of one image in {first_split} ({first}) and {split} "
                    f"({path}): train and test would share images"
                )
            if first_label != label:
                raise ValueError(
                    f"{where}: views of one image have labels {first_label} ({first}) and "
                    f"{label} ({path})"
                )
        else:
            self.items[key] = (split, label, path)


def _read_splits(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"splits file not found: {path}")
    try:
        table = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(table, dict) or not any(s in table for s in SPLITS):
        raise ValueError(f"{path} must be a JSON object with some of the keys {SPLITS}")
    return table


def _resolver(splits_json: Path) -> Callable[[str], Path]:
    root = splits_json.parent

    def resolve(raw: str) -> Path:
        given = Path(raw)
        candidates = [given, root / given]
        parts = given.parts
        if root.name in parts:  # re-root "<anything>/<dataset dir>/rest" at the splits folder
            candidates.append(root.joinpath(*parts[len(parts) - parts[::-1].index(root.name) :]))
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(
            f"INR file {raw!r} from {splits_json} not found "
            f"(tried {', '.join(map(str, candidates))})"
        )

    return resolve
