"""Alignment of networks by weight matching, pairwise or to a cached template."""

from nngraph.align.template import AlignmentCache, align_to_template
from nngraph.align.weight_matching import (
    apply_perms,
    compose_perms,
    invert_perms,
    weight_matching,
    weight_matching_batch,
)

__all__ = [
    "AlignmentCache",
    "align_to_template",
    "apply_perms",
    "compose_perms",
    "invert_perms",
    "weight_matching",
    "weight_matching_batch",
]
