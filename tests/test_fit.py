"""Batched SIREN fitting: quality, reconstruction, views, early stopping, input checks."""

from __future__ import annotations

import pytest
import torch

from nngraph.data import load_source
from nngraph.graph import ArchSpec
from nngraph.inr import fit_inrs, mlp_forward, psnr
from nngraph.inr.functional import coordinate_grid

SPEC = ArchSpec.siren()


@pytest.fixture(scope="module")
def digits():
    return load_source("digits")


def _render(params: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    h, w, c = shape
    return mlp_forward(params, coordinate_grid(h, w), SPEC).view(len(params), h, w, c)


def test_fitted_inrs_reach_the_target_and_redraw_their_images(digits) -> None:
    images = digits.images[:48]
    result = fit_inrs(images, SPEC, steps=1000, progress=False, seed=1)  # the paper's settings
    assert result.params.shape == (48, SPEC.num_params)
    assert bool((result.psnr >= 35).all()), result.psnr.min()
    redrawn = _render(result.params, digits.image_shape)
    measured = psnr(((redrawn - images) ** 2).mean(dim=(1, 2, 3)))
    torch.testing.assert_close(measured, result.psnr, rtol=0, atol=1e-3)  # psnr is of these params
    assert float(measured.min()) >= 35
    # early stopping: converged INRs stopped before the step budget, once past the target
    assert bool((result.steps < 1000).all()) and bool((result.psnr >= 40).all())


def test_views_are_distinct_inrs_of_the_same_image(digits) -> None:
    images = digits.images[:6]
    result = fit_inrs(images, SPEC, views=3, steps=1000, progress=False)
    params = result.params.view(6, 3, -1)
    for i in range(6):
        for a in range(3):
            for b in range(a + 1, 3):
                assert (params[i, a] - params[i, b]).abs().max() > 0.05  # different networks
    redrawn = _render(result.params, digits.image_shape).view(6, 3, 8, 8, 1)
    errors = psnr(((redrawn - images.unsqueeze(1)) ** 2).mean(dim=(2, 3, 4)))
    assert bool((errors >= 35).all())  # ... each drawing its own image


def test_no_target_runs_every_step_and_seeds_reproduce(digits) -> None:
    images = digits.images[:4]
    a = fit_inrs(images, SPEC, steps=20, target_psnr=None, progress=False, seed=3)
    b = fit_inrs(images, SPEC, steps=20, target_psnr=None, progress=False, seed=3, batch_size=2)
    c = fit_inrs(images, SPEC, steps=20, target_psnr=None, progress=False, seed=4)
    assert bool((a.steps == 20).all())
    torch.testing.assert_close(a.params, b.params, rtol=0, atol=1e-5)  # batch size is not a factor
    assert not torch.allclose(a.params, c.params)


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (torch.zeros(2, 8, 8, dtype=torch.uint8), "floating point in \\[0, 1\\].*divide uint8"),
        (torch.zeros(2, 8, 8, 3), "3 channels but .* outputs 1"),
        (torch.full((2, 8, 8), 2.0), "must lie in \\[0, 1\\]"),
        (torch.zeros(8, 8), "shape \\[M, H, W\\] or \\[M, H, W, C\\]"),
        (torch.full((1, 8, 8), float("nan")), "NaN or Inf"),
    ],
)
def test_bad_images_are_explained(images: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_inrs(images, SPEC, steps=1, progress=False)


@pytest.mark.parametrize("spec", [SPEC, ArchSpec((2, 16, 8, 3), w0=10.0, out_offset=0.0)])
def test_hand_written_siren_backward_matches_autograd(spec: ArchSpec) -> None:
    from nngraph.inr.fit import _siren_loss_and_grad
    from nngraph.inr.siren import sample_init_params

    gen = torch.Generator().manual_seed(0)
    params = (
        sample_init_params(spec, 5, gen) + torch.randn(5, spec.num_params, generator=gen) * 0.01
    )
    coords = coordinate_grid(7, 9)
    target = torch.rand(5, 63, spec.out_dim, generator=gen)
    per_row = coords + torch.randn(5, *coords.shape, generator=gen) * 0.1  # SDF fits: own points
    for points in (coords, per_row):
        mse, grad, residual = _siren_loss_and_grad(params, points, target, spec, keep_residual=True)
        leaf = params.clone().requires_grad_(True)
        out = mlp_forward(leaf, points, spec)
        ref = ((out - target) ** 2).mean(dim=(1, 2))
        ref.sum().backward()
        torch.testing.assert_close(mse, ref.detach(), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(grad, leaf.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(residual, (out - target).detach(), rtol=1e-5, atol=1e-6)


def test_relu_inrs_fit_through_autograd(digits) -> None:
    spec = ArchSpec.mlp((2, 64, 64, 1), activation="relu")
    result = fit_inrs(digits.images[:4], spec, steps=300, lr=3e-3, target_psnr=None, progress=False)
    assert float(result.psnr.median()) > 15  # a ReLU MLP fits 8x8 digits coarsely but for real
