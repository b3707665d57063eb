"""Exact signed distance functions of simple solids, vectorised over many shapes of one kind.

Each ``sdf_<kind>(p, a)`` takes points ``p [n, Q, 3]`` in the shape's own frame and its
parameters ``a [n, 4]`` (unused entries ignored) and returns ``[n, Q]``: negative inside, the exact
Euclidean distance to the surface (not a bound), so sampled targets and the zero level set are
right everywhere. The formulas are the classic closed forms (extrusions and revolutions of exact
2-D distances); the ellipsoid, which has none, is solved for its closest point by bisection.
``BOUNDING_RADIUS`` gives each kind's radius around the origin, used to fit shapes in the unit ball.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["BOUNDING_RADIUS", "SDFS", "sdf_local"]

_SQRT3 = math.sqrt(3.0)


def _col(a: Tensor, i: int) -> Tensor:
    return a[:, i : i + 1]  # [n, 1], broadcasts over the Q points


def _extrude(d2: Tensor, z: Tensor, h: Tensor) -> Tensor:
    """Exact distance of the 2-D shape with exact distance ``d2`` extruded to ``|z| <= h``."""
    dz = z.abs() - h
    outside = torch.sqrt(d2.clamp_min(0) ** 2 + dz.clamp_min(0) ** 2)
    return outside + torch.maximum(d2, dz).clamp_max(0)


def sdf_sphere(p: Tensor, a: Tensor) -> Tensor:
    return p.norm(dim=-1) - _col(a, 0)


def sdf_box(p: Tensor, a: Tensor) -> Tensor:
    q = p.abs() - a[:, None, :3]
    return q.clamp_min(0).norm(dim=-1) + q.amax(dim=-1).clamp_max(0)


def sdf_torus(p: Tensor, a: Tensor) -> Tensor:
    """Ring of major radius ``a0`` and tube radius ``a1`` around the y axis."""
    rho = p[..., [0, 2]].norm(dim=-1)
    return torch.hypot(rho - _col(a, 0), p[..., 1]) - _col(a, 1)


def sdf_cylinder(p: Tensor, a: Tensor) -> Tensor:
    """Radius ``a0``, half-height ``a1`` along y."""
    return _extrude(p[..., [0, 2]].norm(dim=-1) - _col(a, 0), p[..., 1], _col(a, 1))


def sdf_tube(p: Tensor, a: Tensor) -> Tensor:
    """A hollow cylinder: wall centred at radius ``a0``, half-thickness ``a1``, half-height
    ``a2``."""
    rho = p[..., [0, 2]].norm(dim=-1)
    return _extrude((rho - _col(a, 0)).abs() - _col(a, 1), p[..., 1], _col(a, 2))


def sdf_capsule(p: Tensor, a: Tensor) -> Tensor:
    """Radius ``a0`` around the segment ``|y| <= a1`` of the y axis."""
    h = _col(a, 1)
    y = p[..., 1] - p[..., 1].clamp(-h, h)
    return torch.sqrt(p[..., 0] ** 2 + y**2 + p[..., 2] ** 2) - _col(a, 0)


def sdf_cone(p: Tensor, a: Tensor) -> Tensor:
    """A capped cone along y: radius ``a0`` at ``y = -a2``, ``a1`` at ``y = +a2``."""
    r1, r2, h = _col(a, 0), _col(a, 1), _col(a, 2)
    qx, qy = p[..., [0, 2]].norm(dim=-1), p[..., 1]
    cap_r = torch.where(qy < 0, r1, r2)
    ca_x, ca_y = qx - torch.minimum(qx, cap_r), qy.abs() - h
    k2x, k2y = r2 - r1, 2 * h
    t = (((r2 - qx) * k2x + (h - qy) * k2y) / (k2x**2 + k2y**2)).clamp(0, 1)
    cb_x, cb_y = qx - r2 + k2x * t, qy - h + k2y * t
    sign = torch.where((cb_x < 0) & (ca_y < 0), -1.0, 1.0)
    return sign * torch.sqrt(torch.minimum(ca_x**2 + ca_y**2, cb_x**2 + cb_y**2))


def sdf_octahedron(p: Tensor, a: Tensor) -> Tensor:
    """Vertices at distance ``a0`` on the axes."""
    s = _col(a, 0)
    p = p.abs()
    m = p.sum(dim=-1) - s
    x, y, z = p.unbind(-1)
    use_x, use_y, use_z = 3 * x < m, 3 * y < m, 3 * z < m
    # the coordinates rotated so the face's nearest vertex axis comes first
    q0 = torch.where(use_x, x, torch.where(use_y, y, z))
    q1 = torch.where(use_x, y, torch.where(use_y, z, x))
    q2 = torch.where(use_x, z, torch.where(use_y, x, y))
    k = (0.5 * (q2 - q1 + s)).clamp(min=0).minimum(s)
    edge = torch.sqrt(q0**2 + (q1 - s + k) ** 2 + (q2 - k) ** 2)
    return torch.where(use_x | use_y | use_z, edge, m / _SQRT3)


def _hexagon(x: Tensor, y: Tensor, r: Tensor) -> Tensor:
    """Exact 2-D distance to a regular hexagon of inradius ``r``, flat edges at ``y = ±r``."""
    kx, ky, kz = -_SQRT3 / 2, 0.5, 1 / _SQRT3
    x, y = x.abs(), y.abs()
    d = 2 * (kx * x + ky * y).clamp_max(0)
    x, y = x - d * kx, y - d * ky
    x = x - x.clamp(-kz * r, kz * r)
    y = y - r
    return torch.hypot(x, y) * torch.sign(y)


def _triangle(x: Tensor, y: Tensor, r: Tensor) -> Tensor:
    """Exact 2-D distance to the equilateral triangle with vertices ``(±r, -r/√3)``,
    ``(0, 2r/√3)``."""
    x = x.abs() - r
    y = y + r / _SQRT3
    fold = x + _SQRT3 * y > 0
    x, y = torch.where(fold, (x - _SQRT3 * y) / 2, x), torch.where(fold, (-_SQRT3 * x - y) / 2, y)
    x = x - x.clamp(min=-2 * r, max=torch.zeros_like(r))
    return -torch.hypot(x, y) * torch.sign(y)


def sdf_hex_prism(p: Tensor, a: Tensor) -> Tensor:
    """A hexagon of inradius ``a0`` in the xy plane, extruded to ``|z| <= a1``."""
    return _extrude(_hexagon(p[..., 0], p[..., 1], _col(a, 0)), p[..., 2], _col(a, 1))


def sdf_tri_prism(p: Tensor, a: Tensor) -> Tensor:
    """An equilateral triangle of half-side ``a0`` in the xy plane, extruded to ``|z| <= a1``."""
    return _extrude(_triangle(p[..., 0], p[..., 1], _col(a, 0)), p[..., 2], _col(a, 1))


def sdf_link(p: Tensor, a: Tensor) -> Tensor:
    """A chain link: a ring of radius ``a1`` in the xy plane stretched by ``±a0`` along y, tube
    radius ``a2``."""
    qy = (p[..., 1].abs() - _col(a, 0)).clamp_min(0)
    return torch.hypot(torch.hypot(p[..., 0], qy) - _col(a, 1), p[..., 2]) - _col(a, 2)


def sdf_ellipsoid(p: Tensor, a: Tensor, iterations: int = 80) -> Tensor:
    """Semi-axes ``a0, a1, a2``. The closest point ``x_i = e_i² y_i / (e_i² + t)`` for the root
    ``t > -min e²`` of ``Σ (e_i y_i / (e_i² + t))² = 1`` (monotone in ``t``), found by bisection in
    float64: exact to rounding, inside and out."""
    e = a[:, None, :3].double()
    y = p.double().abs().clamp_min(1e-12)  # off the symmetry planes: the root stays bracketed
    e2 = e**2
    lo = -e2.amin(dim=-1) + 1e-15
    hi = e.amax(dim=-1) * y.norm(dim=-1) + 1e-12
    for _ in range(iterations):
        mid = (lo + hi) / 2
        f = ((e * y / (e2 + mid[..., None])) ** 2).sum(dim=-1) - 1
        lo, hi = torch.where(f > 0, mid, lo), torch.where(f > 0, hi, mid)
    t = (lo + hi) / 2
    closest = e2 * y / (e2 + t[..., None])
    dist = (y - closest).norm(dim=-1)
    inside = ((y / e) ** 2).sum(dim=-1) < 1
    return torch.where(inside, -dist, dist).to(p.dtype)


SDFS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "sphere": sdf_sphere,
    "ellipsoid": sdf_ellipsoid,
    "box": sdf_box,
    "torus": sdf_torus,
    "cylinder": sdf_cylinder,
    "cone": sdf_cone,
    "capsule": sdf_capsule,
    "octahedron": sdf_octahedron,
    "hex_prism": sdf_hex_prism,
    "tri_prism": sdf_tri_prism,
    "tube": sdf_tube,
    "link": sdf_link,
}

#: Radius of a ball around the origin holding the shape, from its parameters ``a [n, 4]``.
BOUNDING_RADIUS: dict[str, Callable[[Tensor], Tensor]] = {
    "sphere": lambda a: a[:, 0],
    "ellipsoid": lambda a: a[:, :3].amax(dim=1),
    "box": lambda a: a[:, :3].norm(dim=1),
    "torus": lambda a: a[:, 0] + a[:, 1],
    "cylinder": lambda a: torch.hypot(a[:, 0], a[:, 1]),
    "cone": lambda a: torch.hypot(torch.maximum(a[:, 0], a[:, 1]), a[:, 2]),
    "capsule": lambda a: a[:, 0] + a[:, 1],
    "octahedron": lambda a: a[:, 0],
    "hex_prism": lambda a: torch.hypot(2 * a[:, 0] / _SQRT3, a[:, 1]),
    "tri_prism": lambda a: torch.hypot(2 * a[:, 0] / _SQRT3, a[:, 1]),
    "tube": lambda a: torch.hypot(a[:, 0] + a[:, 1], a[:, 2]),
    "link": lambda a: a[:, 0] + a[:, 1] + a[:, 2],
}


def sdf_local(kind: str, p: Tensor, a: Tensor) -> Tensor:
    """Signed distances ``[n, Q]`` of ``n`` shapes of ``kind`` at their own-frame points."""
    if kind not in SDFS:
        raise ValueError(f"unknown shape kind {kind!r}; known: {', '.join(SDFS)}")
    return SDFS[kind](p, a)
