"""INRs: SIREN / MLP modules and batched functional evaluation."""

from nngraph.inr.fit import FitResult, fit_inrs, psnr
from nngraph.inr.functional import coordinate_grid, mlp_forward, siren_forward
from nngraph.inr.siren import INITS, MLP, Siren, sample_init_params

__all__ = [
    "INITS",
    "MLP",
    "FitResult",
    "Siren",
    "coordinate_grid",
    "fit_inrs",
    "mlp_forward",
    "psnr",
    "sample_init_params",
    "siren_forward",
]
