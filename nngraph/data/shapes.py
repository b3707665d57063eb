"""3-D shape sources that signed-distance INRs are fitted from.

A :class:`ShapeSource` is to SDF INRs what an ``ImageSource`` is to image INRs: items with labels
and a train/test split, plus ``sample(items, count, seed)``, the points a shape's INR is fitted
on and their signed distances. ``shapes`` (the offline default) draws procedural solids with
exact analytic SDFs (:mod:`nngraph.data.sdf`): per item a random size, proportions and pose, so a
class is a family of shapes, not one. Mesh sources (``mesh_folder``, ``modelnet40``) live in
:mod:`nngraph.data.meshes`.

Sampling follows DeepSDF and the paper's SDF INRs: points on the surface pushed off by Gaussian
offsets at two scales (``near_sigmas``), plus points uniform in the box ``[-1, 1]³``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from nngraph.data.sdf import BOUNDING_RADIUS, SDFS, sdf_local

__all__ = [
    "SHAPE_KINDS",
    "SHAPE_SOURCES",
    "ProceduralShapes",
    "ShapeSource",
    "load_procedural_shapes",
    "load_shape_source",
    "random_rotations",
    "sample_near_surface",
]

#: The procedural classes, in label order.
SHAPE_KINDS = tuple(SDFS)

#: Per kind, the ranges parameters are drawn from (uniform; before the shape is scaled into the
#: unit ball). The ranges overlap between kinds (a short wide cylinder, a tube with a thick wall,
#: a cone with a wide top) so that no single statistic separates the classes.
_PARAM_RANGES: dict[str, list[tuple[float, float]]] = {
    "sphere": [(1.0, 1.0)],
    "ellipsoid": [(0.35, 1.0), (0.35, 1.0), (0.35, 1.0)],
    "box": [(0.3, 1.0), (0.3, 1.0), (0.3, 1.0)],
    "torus": [(1.0, 1.0), (0.15, 0.5)],
    "cylinder": [(0.3, 1.0), (0.3, 1.0)],
    "cone": [(0.4, 1.0), (0.0, 0.3), (0.4, 1.0)],  # r2 a fraction of r1, see _draw_params
    "capsule": [(0.2, 0.5), (0.2, 0.8)],
    "octahedron": [(1.0, 1.0)],
    "hex_prism": [(0.4, 1.0), (0.2, 1.0)],
    "tri_prism": [(0.5, 1.0), (0.2, 1.0)],
    "tube": [(0.6, 1.0), (0.1, 0.3), (0.3, 1.0)],
    "link": [(0.2, 0.6), (0.3, 0.5), (0.08, 0.2)],
}


@dataclass
class ShapeSource:
    """Shapes with labels and the source's own train/test split; subclasses say how to sample
    points and signed distances."""

    name: str
    labels: Tensor  # [M] long
    is_test: Tensor  # [M] bool
    class_names: list[str]
    index: Tensor | None = None  # [M] position in the full source (set by ``subset``)

    def __post_init__(self) -> None:
        m = len(self.labels)
        if self.index is None:
            self.index = torch.arange(m)
        if self.labels.shape != (m,) or self.is_test.shape != (m,):
            raise ValueError(
                f"{self.name}: {m} labels but split {tuple(self.is_test.shape)}; they must match"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def sample(self, items: Tensor, count: int, seed: int = 0) -> tuple[Tensor, Tensor]:
        """``(points [n, count, 3], sdf [n, count])`` for the given item positions; the same
        items, count and seed give the same points whatever else is sampled with them."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A digest of everything that defines the shapes (a cache is never served for others)."""
        raise NotImplementedError

    def subset(self, n: int, seed: int = 0) -> ShapeSource:
        """A seeded random ``n`` items of each split (a quick look that keeps the class mix)."""
        gen = torch.Generator().manual_seed(seed)
        parts = []
        for rows in ((~self.is_test).nonzero().flatten(), self.is_test.nonzero().flatten()):
            parts.append(rows[torch.randperm(len(rows), generator=gen)[:n]])
        return self.take(torch.cat(parts).sort().values)

    def take(self, rows: Tensor) -> ShapeSource:
        """The items at ``rows`` (a new source)."""
        raise NotImplementedError


@dataclass
class ProceduralShapes(ShapeSource):
    """Solids with exact SDFs: ``kind [M]`` (index into :data:`SHAPE_KINDS`), own-frame
    parameters ``params [M, 4]``, and a pose ``world = scale * rotation @ local + shift``."""

    kind: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    params: Tensor = field(default_factory=lambda: torch.zeros(0, 4))
    rotation: Tensor = field(default_factory=lambda: torch.zeros(0, 3, 3))
    shift: Tensor = field(default_factory=lambda: torch.zeros(0, 3))
    scale: Tensor = field(default_factory=lambda: torch.zeros(0))
    near_sigmas: tuple[float, float] = (0.01, 0.05)
    uniform_fraction: float = 0.2

    def sdf(self, items: Tensor, points: Tensor) -> Tensor:
        """Exact signed distances ``[n, Q]`` of the items at world points ``[n, Q, 3]``."""
        items = torch.as_tensor(items, dtype=torch.long)
        out = torch.empty(points.shape[:2], dtype=points.dtype)
        kinds = self.kind[items]
        for k in kinds.unique().tolist():
            sel = (kinds == k).nonzero().flatten()
            rows = items[sel]
            s = self.scale[rows].view(-1, 1, 1)
            local = (points[sel] - self.shift[rows, None, :]) @ self.rotation[rows] / s
            out[sel] = sdf_local(SHAPE_KINDS[k], local, self.params[rows]) * s[..., 0]
        return out

    def sample(self, items: Tensor, count: int, seed: int = 0) -> tuple[Tensor, Tensor]:
        items = torch.as_tensor(items, dtype=torch.long).flatten()
        points = torch.stack([self._points(int(i), count, seed) for i in items])
        return points, self.sdf(items, points)

    def _points(self, item: int, count: int, seed: int) -> Tensor:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + int(self.index[item]))
        n_uniform = round(count * self.uniform_fraction)
        near = sample_near_surface(
            lambda p: self.sdf(torch.tensor([item]), p[None])[0], count - n_uniform,
            self.near_sigmas, gen,
        )  # fmt: skip
        uniform = torch.rand(n_uniform, 3, generator=gen) * 2 - 1
        return torch.cat([near, uniform])

    def fingerprint(self) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for t in (self.kind, self.params, self.rotation, self.shift, self.scale, self.labels,
                  self.is_test):  # fmt: skip
            digest.update(t.contiguous().numpy().tobytes())
        digest.update(repr((self.near_sigmas, self.uniform_fraction)).encode())
        return digest.hexdigest()

    def take(self, rows: Tensor) -> ProceduralShapes:
        return ProceduralShapes(
            self.name, self.labels[rows], self.is_test[rows], self.class_names, self.index[rows],
            self.kind[rows], self.params[rows], self.rotation[rows], self.shift[rows],
            self.scale[rows], self.near_sigmas, self.uniform_fraction,
        )  # fmt: skip


def sample_near_surface(
    sdf: Callable[[Tensor], Tensor],
    count: int,
    sigmas: tuple[float, ...],
    gen: torch.Generator,
    projections: int = 2,
) -> Tensor:
    """``count`` points near the zero level set of ``sdf`` (``[Q, 3] -> [Q]``, exact distances):
    points uniform in the box projected onto the surface along the gradient
    (``p - sdf(p) ∇sdf(p)``, exact for an exact SDF), then offset by ``N(0, σ²)``, the sigmas
    taking equal shares."""
    surface = torch.rand(count, 3, generator=gen) * 2 - 1
    for _ in range(projections):
        p = surface.detach().requires_grad_(True)
        d = sdf(p)
        (grad,) = torch.autograd.grad(d.sum(), p)
        grad = torch.nn.functional.normalize(torch.nan_to_num(grad, 0.0, 0.0, 0.0), dim=1)
        surface = (p - d.detach().unsqueeze(1) * grad).detach()
    which = torch.arange(count) % len(sigmas)
    sigma = torch.tensor(sigmas, dtype=surface.dtype)[which].unsqueeze(1)
    return (surface + torch.randn(count, 3, generator=gen) * sigma).clamp(-1, 1)


def random_rotations(n: int, gen: torch.Generator) -> Tensor:
    """``n`` rotation matrices uniform on SO(3) (QR of Gaussian matrices, signs fixed)."""
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2)).unsqueeze(1)
    flip = torch.det(q) < 0
    q[flip, :, 0] *= -1
    return q.float()


def _draw_params(kind: str, n: int, gen: torch.Generator) -> Tensor:
    params = torch.zeros(n, 4)
    for j, (lo, hi) in enumerate(_PARAM_RANGES[kind]):
        params[:, j] = lo + (hi - lo) * torch.rand(n, generator=gen)
    if kind == "cone":  # the top radius as a fraction of the bottom one, the height in a2
        params[:, 1] *= params[:, 0]
    if kind == "tube":  # the wall fits inside the outer radius
        params[:, 1] = params[:, 1].minimum(params[:, 0] * 0.45)
    return params


def load_procedural_shapes(
    items_per_class: int = 60,
    classes: list[str] | tuple[str, ...] | None = None,
    test_every: int = 5,
    seed: int = 0,
    radius: tuple[float, float] = (0.6, 0.85),
    max_shift: float = 0.08,
    near_sigmas: tuple[float, float] = (0.01, 0.05),
    uniform_fraction: float = 0.2,
    **_: object,
) -> ProceduralShapes:
    """``items_per_class`` random solids of each class (default all of :data:`SHAPE_KINDS`):
    random proportions, a uniform random rotation, a bounding radius drawn from ``radius`` and a
    shift of at most ``max_shift`` per axis, so every shape lies in the unit ball. Every
    ``test_every``-th item of a class is in the test split. Seeded; no files."""
    names = list(classes) if classes else list(SHAPE_KINDS)
    unknown = [c for c in names if c not in SDFS]
    if unknown:
        raise ValueError(f"unknown shape classes {unknown}; known: {', '.join(SHAPE_KINDS)}")
    if items_per_class < 1 or test_every < 2:
        raise ValueError(
            f"need items_per_class >= 1 and test_every >= 2, got {items_per_class}, {test_every}"
        )
    if not 0 < radius[0] <= radius[1] or radius[1] + math.sqrt(3) * max_shift > 1:
        raise ValueError(
            f"radius {tuple(radius)} and max_shift {max_shift} must keep shapes in the unit ball "
            "(radius[1] + sqrt(3) * max_shift <= 1)"
        )
    gen = torch.Generator().manual_seed(seed)
    kinds, params = [], []
    for name in names:
        kinds.append(torch.full((items_per_class,), SHAPE_KINDS.index(name)))
        params.append(_draw_params(name, items_per_class, gen))
    kind, param = torch.cat(kinds), torch.cat(params)
    m = len(kind)
    bound = torch.empty(m)
    for k in kind.unique().tolist():
        sel = kind == k
        bound[sel] = BOUNDING_RADIUS[SHAPE_KINDS[k]](param[sel])
    target = radius[0] + (radius[1] - radius[0]) * torch.rand(m, generator=gen)
    rotation = random_rotations(m, gen)
    shift = (torch.rand(m, 3, generator=gen) * 2 - 1) * max_shift
    labels = torch.arange(len(names)).repeat_interleave(items_per_class)
    is_test = torch.arange(m) % items_per_class % test_every == test_every - 1
    return ProceduralShapes(
        "shapes", labels, is_test, names, None, kind, param, rotation, shift, target / bound,
        tuple(near_sigmas), uniform_fraction,
    )  # fmt: skip


#: Shape sources by name (``data=<name>``); mesh sources register themselves from
#: :mod:`nngraph.data.meshes`.
SHAPE_SOURCES: dict[str, Callable[..., ShapeSource]] = {"shapes": load_procedural_shapes}


def load_shape_source(name: str, **options: object) -> ShapeSource:
    """Load the named shape source; ``options`` go to its loader (which ignores the rest)."""
    import nngraph.data.meshes  # noqa: F401  (registers mesh_folder and modelnet40)

    if name not in SHAPE_SOURCES:
        known = ", ".join(sorted(SHAPE_SOURCES))
        raise ValueError(f"unknown shape source {name!r}; known: {known}")
    return SHAPE_SOURCES[name](**options)
