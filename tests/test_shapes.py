"""Procedural shapes: the analytic SDFs are exact (against brute-force distances to the surface
found from an independent inside test), the sources are seeded and their samples sit where they
should."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from nngraph.data.sdf import BOUNDING_RADIUS, SDFS, sdf_local
from nngraph.data.shapes import SHAPE_KINDS, load_procedural_shapes, random_rotations

S3 = math.sqrt(3)


def _inside(kind: str, p: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Membership written from each solid's definition, not from its distance formula."""
    x, y, z = p.unbind(-1)
    rho = torch.hypot(x, z)
    a0, a1, a2 = (float(v) for v in a[:3])
    if kind == "sphere":
        return p.norm(dim=-1) < a0
    if kind == "ellipsoid":
        return (x / a0) ** 2 + (y / a1) ** 2 + (z / a2) ** 2 < 1
    if kind == "box":
        return (x.abs() < a0) & (y.abs() < a1) & (z.abs() < a2)
    if kind == "torus":
        return (rho - a0) ** 2 + y**2 < a1**2
    if kind == "cylinder":
        return (rho < a0) & (y.abs() < a1)
    if kind == "tube":
        return ((rho - a0).abs() < a1) & (y.abs() < a2)
    if kind == "cone":
        return (y.abs() < a2) & (rho < a0 + (a1 - a0) * (y + a2) / (2 * a2))
    if kind == "capsule":
        return torch.sqrt(x**2 + (y - y.clamp(-a1, a1)) ** 2 + z**2) < a0
    if kind == "octahedron":
        return x.abs() + y.abs() + z.abs() < a0
    if kind == "hex_prism":
        hexagon = (y.abs() < a0) & (S3 / 2 * x.abs() + y.abs() / 2 < a0)
        return hexagon & (z.abs() < a1)
    if kind == "tri_prism":
        inr = a0 / S3
        tri = (-y < inr) & (S3 / 2 * x + y / 2 < inr) & (-S3 / 2 * x + y / 2 < inr)
        return tri & (z.abs() < a1)
    if kind == "link":  # within a2 of the stadium curve: two half-circles and two straight sides
        yc = y - y.clamp(-a0, a0)
        return (torch.hypot(x, yc) - a1) ** 2 + z**2 < a2**2
    raise AssertionError(kind)


def _surface_points(kind: str, a: torch.Tensor, res: int = 72) -> np.ndarray:
    """Points on the boundary: every grid edge whose ends differ in membership, bisected."""
    r = float(BOUNDING_RADIUS[kind](a[None])[0]) * 1.05
    ticks = torch.linspace(-r, r, res, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(ticks, ticks, ticks, indexing="ij"), -1)
    inside = _inside(kind, grid, a)
    found = []
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        cross = inside[tuple(lo)] != inside[tuple(hi)]
        p0, p1 = grid[tuple(lo)][cross], grid[tuple(hi)][cross]
        in0 = inside[tuple(lo)][cross]
        for _ in range(30):
            mid = (p0 + p1) / 2
            same = _inside(kind, mid, a) == in0
            p0 = torch.where(same[:, None], mid, p0)
            p1 = torch.where(same[:, None], p1, mid)
        found.append((p0 + p1) / 2)
    return torch.cat(found).numpy()


@pytest.mark.parametrize("kind", SHAPE_KINDS)
def test_analytic_sdf_matches_brute_force_distances(kind):
    gen = torch.Generator().manual_seed(SHAPE_KINDS.index(kind))
    source = load_procedural_shapes(items_per_class=3, classes=[kind], seed=1)
    for a in source.params[:2].double():
        surface = _surface_points(kind, a)
        r = float(BOUNDING_RADIUS[kind](a[None])[0])
        near = torch.tensor(surface[:: max(1, len(surface) // 300)])
        near = near + torch.randn(near.shape, generator=gen, dtype=torch.float64) * 0.05 * r
        far = (torch.rand(300, 3, generator=gen, dtype=torch.float64) * 2 - 1) * 1.3 * r
        q = torch.cat([near, far])
        d = sdf_local(kind, q[None], a[None])[0]
        brute = torch.tensor(cKDTree(surface).query(q.numpy())[0])
        spacing = 2.1 * r / 71
        # a true distance never exceeds the distance to a surface point, and the sampled surface
        # is dense enough that the nearest sample is within two grid spacings of the truth (one,
        # but near a sharp tip, where few grid edges cross the surface)
        assert float((d.abs() - brute).max()) < 1e-6, kind
        assert float((brute - d.abs()).max()) < 2 * spacing, kind
        sign_ok = (d < 0) == _inside(kind, q, a)
        assert bool(sign_ok[d.abs() > 1e-9].all()), kind


def test_procedural_source_is_seeded_in_the_unit_ball_and_labelled():
    a = load_procedural_shapes(items_per_class=5, seed=3)
    b = load_procedural_shapes(items_per_class=5, seed=3)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != load_procedural_shapes(items_per_class=5, seed=4).fingerprint()
    assert len(a) == 5 * len(SHAPE_KINDS) and a.class_names == list(SHAPE_KINDS)
    assert torch.equal(a.labels, torch.arange(len(SHAPE_KINDS)).repeat_interleave(5))
    assert torch.equal(a.is_test.view(-1, 5).sum(1), torch.ones(len(SHAPE_KINDS), dtype=torch.long))
    # every shape inside the unit ball: the SDF is positive on the unit sphere
    sphere = torch.nn.functional.normalize(torch.randn(len(a), 500, 3), dim=-1)
    assert bool((a.sdf(torch.arange(len(a)), sphere) > 0).all())
    # world SDF of a posed shape = scale x local SDF of the un-posed point
    p = torch.rand(len(a), 50, 3) * 2 - 1
    d = a.sdf(torch.arange(len(a)), p)
    for i in (0, 9, 33):
        local = (p[i] - a.shift[i]) @ a.rotation[i] / a.scale[i]
        want = sdf_local(SHAPE_KINDS[int(a.kind[i])], local[None], a.params[i : i + 1])[0]
        torch.testing.assert_close(d[i], want * a.scale[i])


def test_samples_are_near_the_surface_and_reproducible():
    source = load_procedural_shapes(items_per_class=2, seed=0)
    items = torch.tensor([0, 5, 11])
    pts, sdf = source.sample(items, 1000, seed=7)
    assert pts.shape == (3, 1000, 3) and sdf.shape == (3, 1000)
    again, _ = source.sample(torch.tensor([5]), 1000, seed=7)
    torch.testing.assert_close(again[0], pts[1])  # an item's points do not depend on the batch
    torch.testing.assert_close(sdf, source.sdf(items, pts))
    assert float(pts.abs().max()) <= 1.0
    near = sdf[:, :800].abs()
    assert float(near.median()) < 0.05  # 80% near the surface (sigmas 0.01 and 0.05)
    assert float(sdf[:, 800:].abs().median()) > float(near.median())


def test_rotations_are_proper_and_bad_settings_are_refused():
    r = random_rotations(64, torch.Generator().manual_seed(0))
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3).expand(64, 3, 3), atol=1e-5,
                               rtol=0)  # fmt: skip
    torch.testing.assert_close(torch.det(r), torch.ones(64), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="unknown shape classes"):
        load_procedural_shapes(classes=["teapot"])
    with pytest.raises(ValueError, match="unit ball"):
        load_procedural_shapes(radius=(0.5, 1.0))
    with pytest.raises(ValueError, match="unknown shape kind"):
        sdf_local("teapot", torch.zeros(1, 1, 3), torch.zeros(1, 4))
    assert set(SDFS) == set(BOUNDING_RADIUS)
