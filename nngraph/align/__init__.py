"""Alignment of networks by weight matching, pairwise or to a cached template."""

from nngraph.align.template import AlignmentCache, align_to_template
from nngraph.align.weight_matching import (
    apply_alignment,
    apply_perms,
    apply_signs,
    compose_perms,
    compose_signed,
    invert_perms,
    invert_signed,
    signed_weight_matching,
    weight_matching,
    weight_matching_batch,
)

__all__ = [
    "AlignmentCache",
    "align_to_template",
    "apply_alignment",
    "apply_perms",
    "apply_signs",
    "compose_perms",
    "compose_signed",
    "invert_perms",
    "invert_signed",
    "signed_weight_matching",
    "weight_matching",
    "weight_matching_batch",
]
