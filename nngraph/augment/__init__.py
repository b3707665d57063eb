"""Weight-space augmentations as PyG transforms on neural-graph batches, and their registry.

``build_augmentation("siren_neg")``, ``build_augmentation(["siren_neg", "mixup_align"])`` or
``build_augmentation({"translate": {"max_shift": 0.1}, "mixup": {}})`` (a Hydra ``aug`` node) give
one transform; ``None``, ``"none"`` or ``[]`` give the identity.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from torch_geometric.transforms import BaseTransform, Compose

from nngraph.augment.base import GraphAugmentation
from nngraph.augment.generic import Dropout, GaussianNoise, QuantileDropout
from nngraph.augment.input_space import Rotate, Scale, Translate
from nngraph.augment.mixup import MixUp, MixUpAlign, MixUpPerm
from nngraph.augment.symmetry import Permute, PositiveScale, SirenBias, SirenNegation
from nngraph.graph.view import GraphView

__all__ = [
    "AUGMENTATIONS",
    "Dropout",
    "GaussianNoise",
    "GraphAugmentation",
    "GraphView",
    "MixUp",
    "MixUpAlign",
    "MixUpPerm",
    "Permute",
    "PositiveScale",
    "QuantileDropout",
    "Rotate",
    "Scale",
    "SirenBias",
    "SirenNegation",
    "Translate",
    "build_augmentation",
]

#: config name -> augmentation class (the names of ``nngraph/configs/aug/*.yaml``)
AUGMENTATIONS: dict[str, type[GraphAugmentation]] = {
    "translate": Translate,
    "rotate": Rotate,
    "scale": Scale,
    "gaussian_noise": GaussianNoise,
    "dropout": Dropout,
    "quantile_dropout": QuantileDropout,
    "siren_neg": SirenNegation,
    "siren_bias": SirenBias,
    "positive_scale": PositiveScale,
    "permute": Permute,
    "mixup": MixUp,
    "mixup_perm": MixUpPerm,
    "mixup_align": MixUpAlign,
}


def build_augmentation(
    config: str | Sequence[str] | Mapping[str, Mapping[str, Any] | None] | None,
    **context: Any,
) -> BaseTransform:
    """One transform from names or a name -> options mapping, applied in the given order.

    ``context`` (``num_classes``, ``cache``, ``seed``, ``generator``, ...) goes to every
    augmentation that takes it, so a pipeline is configured once; a ``seed`` is offset per step so
    the steps do not draw the same random numbers.
    """
    if config is None or config == "none":
        items: list[tuple[str, Mapping[str, Any]]] = []
    elif isinstance(config, str):
        items = [(config, {})]
    elif isinstance(config, Mapping):
        items = [(str(k), dict(v or {})) for k, v in config.items()]
    else:
        items = [(str(k), {}) for k in config]
    transforms = []
    for position, (name, options) in enumerate(items):
        if name == "none":
            continue
        if name not in AUGMENTATIONS:
            raise ValueError(
                f"unknown augmentation {name!r}; known: none, {', '.join(sorted(AUGMENTATIONS))}"
            )
        cls = AUGMENTATIONS[name]
        accepted = _accepted(cls)
        kwargs = {k: v for k, v in context.items() if k in accepted}
        if kwargs.get("seed") is not None:  # one seed for the pipeline, its own stream per step
            kwargs["seed"] = int(kwargs["seed"]) + 7919 * position
        try:
            transforms.append(cls(**{**kwargs, **options}))
        except TypeError as err:
            raise ValueError(f"bad options for augmentation {name!r}: {err}") from err
    _check_cached_alignment_order(transforms)
    return transforms[0] if len(transforms) == 1 else Compose(transforms)


#: steps that move or negate neurons: a cached alignment no longer describes the batch after them
_FRAME_CHANGING = (Permute, SirenNegation, SirenBias, PositiveScale, MixUpPerm)


def _check_cached_alignment_order(transforms: list[GraphAugmentation]) -> None:
    for i, t in enumerate(transforms):
        if isinstance(t, MixUpAlign) and t.cache is not None:
            before = [type(p).__name__ for p in transforms[:i] if isinstance(p, _FRAME_CHANGING)]
            if before:
                raise ValueError(
                    f"mixup_align uses a cached alignment of the stored INRs, but {before} change "
                    "which neuron is which before it; put mixup_align first, or use it without "
                    "a cache (pairwise weight matching)"
                )


def _accepted(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        names |= {
            p for p in inspect.signature(klass.__init__).parameters if p not in ("self", "kw")
        }
    return names
