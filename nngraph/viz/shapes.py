"""Look at signed-distance INRs: marching cubes on a grid evaluation to a mesh, a matplotlib
rendering of meshes, and ``.ply`` export (any mesh viewer opens it)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from torch import Tensor

from nngraph.graph.spec import ArchSpec
from nngraph.inr.functional import mlp_forward
from nngraph.io import atomic_write

__all__ = [
    "Mesh", "grid_points", "reconstruct_mesh", "sdf_grid", "shape_augmentation_figure",
    "shape_figure", "shape_mixup_figure", "write_ply",
]  # fmt: skip


@dataclass
class Mesh:
    """A triangle mesh: ``vertices [V, 3]`` float, ``faces [F, 3]`` vertex indices."""

    vertices: np.ndarray
    faces: np.ndarray

    @property
    def empty(self) -> bool:
        return len(self.faces) == 0


def grid_points(resolution: int, bound: float = 1.0) -> Tensor:
    """``resolution³`` points of the cube ``[-bound, bound]³``, ``[R³, 3]``, x slowest."""
    ticks = torch.linspace(-bound, bound, resolution)
    return torch.stack(torch.meshgrid(ticks, ticks, ticks, indexing="ij"), -1).view(-1, 3)


def sdf_grid(
    params: Tensor, spec: ArchSpec, resolution: int = 64, bound: float = 1.0, chunk: int = 65536
) -> Tensor:
    """The INRs' values ``[n, R, R, R]`` on the grid (``params [n, P]`` or ``[P]``)."""
    if spec.in_dim != 3 or spec.out_dim != 1:
        raise ValueError(f"a 3-D SDF INR maps 3 inputs to 1 output; {spec} does not")
    params = params.reshape(-1, spec.num_params).float()
    points = grid_points(resolution, bound)
    with torch.no_grad():
        values = [mlp_forward(params, points[i : i + chunk], spec)[..., 0]
                  for i in range(0, len(points), chunk)]  # fmt: skip
    return torch.cat(values, dim=1).view(-1, resolution, resolution, resolution)


def reconstruct_mesh(
    params: Tensor, spec: ArchSpec, resolution: int = 64, bound: float = 1.0, level: float = 0.0
) -> Mesh:
    """The ``level`` set (the surface, for an SDF) of one INR as a mesh in world coordinates,
    by marching cubes (scikit-image) on a ``resolution³`` grid. No crossing: an empty mesh."""
    from skimage.measure import marching_cubes

    values = sdf_grid(params, spec, resolution, bound)[0].numpy()
    if not (values.min() < level < values.max()):
        return Mesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    step = 2 * bound / (resolution - 1)
    # scikit-image's default winding ("descent") has the normals point to higher values:
    # outwards for an SDF (negative inside), as mesh viewers expect
    verts, faces, _, _ = marching_cubes(values, level, spacing=(step, step, step))
    return Mesh(verts - bound, faces.astype(np.int64))


def write_ply(mesh: Mesh, path: str | os.PathLike) -> Path:
    """Write ``mesh`` as a binary little-endian ``.ply`` (atomically)."""
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(mesh.vertices)}\nproperty float x\nproperty float y\n"
        f"property float z\nelement face {len(mesh.faces)}\n"
        "property list uchar int vertex_indices\nend_header\n"
    ).encode()
    faces = np.empty(len(mesh.faces), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    faces["n"], faces["idx"] = 3, mesh.faces
    body = np.asarray(mesh.vertices, dtype="<f4").tobytes() + faces.tobytes()
    return atomic_write(path, lambda handle: handle.write(header + body), mode="wb")


def _draw(ax, mesh: Mesh, color: str, title: str) -> None:
    if not mesh.empty:
        tris = mesh.vertices[mesh.faces]
        normal = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
        normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
        light = np.clip(normal @ np.array([0.4, -0.5, 0.77]), 0, 1) * 0.7 + 0.3
        base = np.array(matplotlib.colors.to_rgb(color))
        ax.add_collection3d(Poly3DCollection(tris, facecolors=light[:, None] * base,
                                             linewidths=0))  # fmt: skip
    else:
        ax.text(0, 0, 0, "no surface", ha="center", fontsize=7)
    for set_lim in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
        set_lim(-1, 1)
    ax.set_box_aspect((1, 1, 1))
    ax.set_axis_off()
    ax.set_title(title, fontsize=8)


def shape_figure(
    meshes: Sequence[Mesh] | Mesh,
    titles: Sequence[str] | None = None,
    *,
    cols: int | None = None,
    color: str = "tab:blue",
    size: float = 2.2,
) -> Figure:
    """Meshes side by side (rows of ``cols``), shaded by a fixed light, in the unit cube."""
    meshes = [meshes] if isinstance(meshes, Mesh) else list(meshes)
    cols = cols or len(meshes)
    rows = -(-len(meshes) // cols)
    fig = plt.figure(figsize=(size * cols, size * rows))
    for i, mesh in enumerate(meshes):
        ax = fig.add_subplot(rows, cols, i + 1, projection="3d")
        _draw(ax, mesh, color, titles[i] if titles else "")
    fig.tight_layout()
    return fig


def shape_augmentation_figure(
    params: Tensor,
    spec: ArchSpec,
    augmentations: Sequence[str] = ("rotate", "translate", "scale", "siren_neg"),
    *,
    seed: int = 0,
    resolution: int = 40,
    **options: object,
) -> Figure:
    """One SDF INR and what each named augmentation does to its surface (one column each);
    ``options`` go to every augmentation (e.g. ``max_degrees=90``)."""
    from nngraph.augment import build_augmentation
    from nngraph.graph.convert import to_graph_batch, to_params

    g = to_graph_batch(params.reshape(1, -1), spec)
    meshes, titles = [reconstruct_mesh(params, spec, resolution)], ["original"]
    for name in augmentations:
        aug = build_augmentation(name, seed=seed, **options)
        meshes.append(reconstruct_mesh(to_params(aug(g))[0], spec, resolution))
        titles.append(name)
    return shape_figure(meshes, titles, color="tab:orange")


def shape_mixup_figure(
    a: Tensor,
    b: Tensor,
    spec: ArchSpec,
    *,
    lams: Sequence[float] = (1.0, 0.75, 0.5, 0.25, 0.0),
    resolution: int = 40,
) -> Figure:
    """Surfaces of ``lam * a + (1 - lam) * b``: plain (top row) and with ``b``'s neurons aligned
    to ``a``'s by weight matching first (bottom row), the paper's aligned MixUp."""
    from nngraph.align import apply_perms, weight_matching

    aligned = apply_perms(b, weight_matching(a, b, spec), spec)
    meshes = [reconstruct_mesh(lam * a + (1 - lam) * other, spec, resolution)
              for other in (b, aligned) for lam in lams]  # fmt: skip
    titles = [f"{kind} λ={lam:g}" for kind in ("plain", "aligned") for lam in lams]
    return shape_figure(meshes, titles, cols=len(lams), color="tab:green")
