"""INRs: SIREN / MLP modules and batched functional evaluation."""

from nngraph.inr.functional import coordinate_grid, mlp_forward, siren_forward
from nngraph.inr.siren import MLP, Siren

__all__ = ["MLP", "Siren", "coordinate_grid", "mlp_forward", "siren_forward"]
