"""SDF INRs of 3-D shapes: fitted zero level sets lie on the true surface, 3-D input-space
augmentations move the SDF exactly, stores build and resume, a 2-process torchrun fit equals one
process, meshes load (with the mesh extra) and bad meshes are refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nngraph.augment import build_augmentation
from nngraph.data import load_store
from nngraph.data.build import build_store
from nngraph.data.shapes import SHAPE_KINDS, load_procedural_shapes
from nngraph.graph import ArchSpec, to_graph_batch, to_params
from nngraph.inr import mlp_forward
from nngraph.inr.fit_sdf import fit_sdf_inrs, sign_agreement
from nngraph.viz.shapes import grid_points, reconstruct_mesh, sdf_grid, shape_figure, write_ply

ROOT = Path(__file__).resolve().parents[1]
SPEC = ArchSpec((3, 32, 32, 1), activation="sine", w0=30.0, out_offset=0.0)
TINY = ArchSpec((3, 8, 8, 1), activation="sine", w0=30.0, out_offset=0.0)


@pytest.fixture(scope="module")
def fitted():
    source = load_procedural_shapes(items_per_class=1, classes=["sphere", "box", "torus"], seed=2)
    points, sdf = source.sample(torch.arange(3), 2048, seed=0)
    result = fit_sdf_inrs(points, sdf, SPEC, steps=1000, lr=1e-3, target_sign=None,
                          progress=False, init="dwsnets")  # fmt: skip
    return source, result


def test_fitted_zero_level_set_lies_on_the_true_surface(fitted):
    source, result = fitted
    for i in range(3):
        mesh = reconstruct_mesh(result.params[i], SPEC, resolution=40)
        assert not mesh.empty
        verts = torch.tensor(mesh.vertices, dtype=torch.float32)
        error = source.sdf(torch.tensor([i]), verts[None]).abs().mean()
        assert float(error) < 0.04, (SHAPE_KINDS[int(source.kind[i])], float(error))
        # faces wind outwards: normals point away from the inside
        tri = verts[torch.tensor(mesh.faces)]
        normal = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        centre = tri.mean(1)
        outward = source.sdf(torch.tensor([i]), (centre + 0.02 * torch.nn.functional.normalize(
            normal, dim=1))[None])[0]  # fmt: skip
        assert float((outward > 0).float().mean()) > 0.9
    assert float(result.psnr.min()) > 0.8  # sign agreement of the fit, a fraction


def test_an_unfitted_inr_disagrees_and_the_metric_counts_signs():
    target = torch.tensor([[[-1.0], [0.5], [0.001], [2.0]]])
    out = torch.tensor([[[-0.5], [0.2], [-0.01], [-1.0]]])
    assert float(sign_agreement(out, target)) == 0.5
    assert float(sign_agreement(out, target, band=0.01)) == pytest.approx(2 / 3)


def test_point_minibatches_do_not_depend_on_which_rows_share_a_batch():
    source = _tiny_shapes()
    points, sdf = source.sample(torch.arange(5), 256, seed=0)
    kw = dict(steps=40, lr=1e-3, target_sign=0.9, check_every=5, progress=False, seed=1)
    a = fit_sdf_inrs(points, sdf, TINY, batch_size=2, points_per_step=64, **kw)
    b = fit_sdf_inrs(points, sdf, TINY, batch_size=5, points_per_step=64, **kw)
    assert torch.equal(a.steps, b.steps)
    torch.testing.assert_close(a.params, b.params, rtol=1e-5, atol=1e-6)
    full = fit_sdf_inrs(points, sdf, TINY, batch_size=5, points_per_step=None, **kw)
    assert not torch.allclose(full.params, b.params)  # the minibatches were used
    # the reported sign agreement is over all of a shape's points, not the last minibatch
    out = mlp_forward(b.params, points, TINY)
    torch.testing.assert_close(b.psnr, sign_agreement(out, sdf.unsqueeze(-1), 0.01), atol=1e-4,
                               rtol=0)  # fmt: skip
    with pytest.raises(ValueError, match="points_per_step"):
        fit_sdf_inrs(points, sdf, TINY, points_per_step=0, **kw)


@pytest.mark.parametrize("name", ["rotate", "translate", "scale"])
def test_3d_input_space_augmentations_move_the_sdf_exactly(fitted, name):
    _, result = fitted
    g = to_graph_batch(result.params, SPEC)
    aug = build_augmentation(name, seed=5)
    out = aug(g)
    pts = grid_points(12)
    for i in range(3):
        if name == "rotate":
            moved = pts @ aug.last_rotation[i].T  # f'(x) = f(R x)
        elif name == "translate":
            moved = pts - aug.last_shift[i]  # f'(x) = f(x - t)
        else:
            moved = pts * aug.last_scale[i]  # f'(x) = f(s x)
        want = mlp_forward(result.params[i : i + 1], moved, SPEC)
        got = mlp_forward(to_params(out)[i : i + 1], pts, SPEC)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-4)
    if name == "rotate":  # and the reconstructed surface is the rotated one
        mesh = reconstruct_mesh(to_params(out)[0], SPEC, resolution=32)
        back = torch.tensor(mesh.vertices, dtype=torch.float32) @ aug.last_rotation[0].T
        values = mlp_forward(result.params[:1], back, SPEC).abs()
        assert float(values.max()) < 0.05  # on the original's zero set, up to grid interpolation


def test_ply_export_and_figure(fitted, tmp_path):
    _, result = fitted
    mesh = reconstruct_mesh(result.params[0], SPEC, resolution=24)
    path = write_ply(mesh, tmp_path / "sphere.ply")
    raw = path.read_bytes()
    header, body = raw.split(b"end_header\n", 1)
    assert f"element vertex {len(mesh.vertices)}".encode() in header
    assert len(body) == 12 * len(mesh.vertices) + 13 * len(mesh.faces)
    verts = np.frombuffer(body[: 12 * len(mesh.vertices)], dtype="<f4").reshape(-1, 3)
    np.testing.assert_allclose(verts, mesh.vertices, rtol=0, atol=1e-6)
    trimesh = pytest.importorskip("trimesh", reason="the mesh extra reads .ply back")
    loaded = trimesh.load(path, process=False)
    assert np.array_equal(np.asarray(loaded.faces), mesh.faces)
    fig = shape_figure([mesh, reconstruct_mesh(torch.zeros(SPEC.num_params), SPEC, 8)],
                       ["fit", "flat"])  # fmt: skip
    assert len(fig.axes) == 2
    from nngraph.viz import shape_augmentation_figure, shape_mixup_figure

    fig = shape_augmentation_figure(result.params[1], SPEC, ("rotate", "scale"), resolution=16)
    assert [ax.get_title() for ax in fig.axes] == ["original", "rotate", "scale"]
    fig = shape_mixup_figure(result.params[1], result.params[2], SPEC, lams=(1.0, 0.5),
                             resolution=16)  # fmt: skip
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match="3 inputs to 1 output"):
        sdf_grid(torch.zeros(ArchSpec.siren().num_params), ArchSpec.siren())


def _tiny_shapes():
    return load_procedural_shapes(items_per_class=5, classes=["sphere", "box", "cone"], seed=1)


def test_shape_store_builds_resumes_and_is_refused_for_other_settings(tmp_path):
    source = _tiny_shapes()
    kw = dict(views=2, steps=20, lr=1e-3, points=256, chunk_size=6, progress=False)
    store = build_store(source, TINY, tmp_path / "s.pt", **kw)
    assert len(store) == 30 and store.meta["kind"] == "sdf" and "image_shape" not in store.meta
    assert store.columns["sign_agreement"].shape == (30,) and bool(torch.isnan(store.psnr).all())
    assert torch.equal(store.labels, source.labels.repeat_interleave(2))
    assert "sign agreement" in store.summary()
    # a killed run: drop the store and one chunk, keep the others; the rerun makes the same store
    again_path = tmp_path / "again.pt"
    build_store(source, TINY, again_path, **kw)
    parts = again_path.with_name(again_path.name + ".parts")
    from nngraph.data.build import _fit_chunks

    assert not parts.exists()
    # refit into parts by hand for chunks 0 and 2, then let build_store finish the rest
    from nngraph.data.parts import start_parts

    settings = load_store(again_path).meta["fit"]
    again_path.unlink()
    start_parts(parts, settings, overwrite=False)
    options = dict(steps=20, lr=1e-3, batch_size=None, seed=0, device=None, init="dwsnets",
                   points=256, target_sign=0.98, sign_band=0.01)  # fmt: skip
    _fit_chunks(source.take(torch.arange(6)), TINY, parts, 2, 6, False, options)
    resumed = build_store(source, TINY, again_path, **kw)
    assert torch.equal(resumed.params, store.params)
    with pytest.raises(ValueError, match="other settings"):
        build_store(source, TINY, tmp_path / "s.pt", **{**kw, "points": 128})
    with pytest.raises(ValueError, match="3-D points to one distance"):
        build_store(source, ArchSpec.siren(), tmp_path / "x.pt", **kw)
    with pytest.raises(ValueError, match="points >= 16"):
        build_store(source, TINY, tmp_path / "x.pt", **{**kw, "points": 4})
    with pytest.raises(ValueError, match="points_per_step >= 1"):
        build_store(source, TINY, tmp_path / "x.pt", **{**kw, "points_per_step": 0})


def test_two_process_torchrun_fit_equals_one_process(tmp_path):
    args = ["data=shapes", "data.items_per_class=4", "data.classes=[sphere,box,torus]",
            "data.arch.layer_sizes=[3,8,8,1]", "data.points=256", "fit.steps=15",
            "fit.chunk_size=3", "fit.progress=false", f"data_dir={tmp_path}"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    one = tmp_path / "one.pt"
    two = tmp_path / "two.pt"
    run = [sys.executable, "-m", "nngraph.fit", *args]
    done = subprocess.run([*run, f"fit.out={one}"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run([*launcher, "-m", "nngraph.fit", *args, f"fit.out={two}"],
                          capture_output=True, text=True, env=env, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = load_store(one), load_store(two)
    assert len(a) == 12 and torch.equal(a.params, b.params)
    assert torch.equal(a.columns["sign_agreement"], b.columns["sign_agreement"])
    assert not two.with_name(two.name + ".parts").exists()


def _write_off(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["OFF", f"{len(vertices)} {len(faces)} 0"]
    lines += [" ".join(f"{c:.8f}" for c in v) for v in vertices]
    lines += ["3 " + " ".join(str(int(i)) for i in f) for f in faces]
    path.write_text("\n".join(lines) + "\n")


def _octahedron(scale: float = 1.0):
    v = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]]) * scale
    f = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4],
                  [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])  # fmt: skip
    return v.astype(float), f


def test_mesh_folder_loads_meshnet_layout_with_exact_distances(tmp_path):
    pytest.importorskip("trimesh", reason="the mesh path needs the mesh extra")
    pytest.importorskip("point_cloud_utils", reason="the mesh path needs the mesh extra")
    from nngraph.data.meshes import load_mesh_folder
    from nngraph.data.sdf import sdf_octahedron

    v, f = _octahedron(2.0)
    for split, n in (("train", 2), ("test", 1)):
        for k in range(n):
            _write_off(tmp_path / "octa" / split / f"o{k}.off", v * (1 + k), f)
            _write_off(tmp_path / "flat" / split / f"f{k}.off", v * [1, 1, 0.3], f)
    source = load_mesh_folder(str(tmp_path), points=400, progress=False)
    assert source.class_names == ["flat", "octa"] and len(source) == 6
    assert source.is_test.tolist() == [False, False, True, False, False, True]
    pts, sdf = source.sample(torch.arange(6), 400)
    # normalised into the unit ball (radius 0.9): the octahedron's vertices at 0.9
    i = 3
    want = sdf_octahedron(pts[i : i + 1].double(), torch.tensor([[0.9, 0, 0, 0]]).double())[0]
    torch.testing.assert_close(sdf[i].double(), want, rtol=0, atol=5e-3)
    with pytest.raises(ValueError, match="at most 400"):
        source.sample(torch.arange(2), 500)


@pytest.mark.parametrize(
    ("vertices", "faces", "match"),
    [
        (np.zeros((0, 3)), np.zeros((0, 3), dtype=int), "empty"),
        (np.array([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]]), np.array([[0, 1, 2]]), "NaN"),
        (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]]), np.array([[0, 1, 5]]), "outside"),
        (np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]]), np.array([[0, 1, 2]]), "zero area"),
        (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]]),
         np.array([[0, 1, 2], [0, 1, 3], [0, 1, 4]]), "non-manifold"),
    ],
)  # fmt: skip
def test_bad_meshes_are_refused(vertices, faces, match):
    from nngraph.data.meshes import check_mesh

    with pytest.raises(ValueError, match=match):
        check_mesh(np.asarray(vertices, dtype=float), np.asarray(faces), "m.off")


def test_mesh_folder_without_files_or_root_is_explained(tmp_path):
    from nngraph.data.meshes import load_mesh_folder

    with pytest.raises(ValueError, match="needs data.root"):
        load_mesh_folder(None)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ValueError, match="no mesh files"):
        load_mesh_folder(str(tmp_path))


@pytest.fixture(scope="module")
def shape_store(tmp_path_factory):
    source = load_procedural_shapes(items_per_class=12, classes=["sphere", "box", "torus"], seed=0)
    path = tmp_path_factory.mktemp("shapes") / "shapes.pt"
    build_store(source, TINY, path, steps=60, lr=1e-3, points=256, progress=False)
    return path


@pytest.mark.parametrize(
    "extra",
    [("model=relational_transformer", "aug=mixup_align", "model.kwargs.n_layers=1",
      "model.kwargs.d_node=16", "model.kwargs.d_edge=8", "model.kwargs.d_attn=8",
      "model.kwargs.d_node_hidden=16", "model.kwargs.d_edge_hidden=8", "model.kwargs.heads=2",
      "model.kwargs.probe_points=16"),
     ("task=simclr", "model=dws", "model.kwargs.hidden=8", "model.kwargs.n_layers=2",
      "aug=[rotate,translate,siren_neg]")],
)  # fmt: skip
def test_training_runs_unchanged_on_shapes(shape_store, tmp_path, extra):
    from hydra import compose, initialize_config_dir

    from nngraph.train.run import run

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        cfg = compose("config", overrides=["data=shapes", f"data.path={shape_store}",
                                           "data.arch.layer_sizes=[3,8,8,1]", "trainer.epochs=2",
                                           "trainer.progress=false", "seed=0", *extra])  # fmt: skip
    summary = run(cfg, tmp_path)
    assert summary["steps"] > 0 and 0 <= summary["test_acc"] <= 1
