"""Importers for published INR datasets, tested on small fixtures written in their formats, and
the exporters that write a store back out in those formats (round trips through the importers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nngraph.data import (
    SPLITS,
    INRStore,
    export_dwsnets,
    export_wsa,
    import_dwsnets,
    import_wsa,
    load_store,
    reconstruct,
    save_store,
)
from nngraph.graph import ArchSpec, register_family
from nngraph.graph.mlp import MLPFamily
from nngraph.inr import Siren
from nngraph.inr.functional import coordinate_grid
from tests.helpers import random_params


def _inr(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = Siren()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return net.state_dict()


def test_dwsnets_format(tmp_path: Path) -> None:
    root = tmp_path / "mnist-inrs"
    table: dict = {}
    expected = []
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        table[split] = {"path": [], "label": []}
        for i in range(n):
            sd = _inr(len(expected))
            path = root / split / f"{i}" / "checkpoints" / "final_model.pth"
            path.parent.mkdir(parents=True)
            torch.save(sd, path)
            # as written on the machine that made the dataset: an absolute path elsewhere
            table[split]["path"].append(
                f"/home/someone/data/mnist-inrs/{split}/{i}/checkpoints/final_model.pth"
            )
            table[split]["label"].append(i % 10)
            expected.append(sd)
    (root / "mnist_splits.json").write_text(json.dumps(table))
    store = import_dwsnets(root / "mnist_splits.json", tmp_path / "store.pt", progress=False)
    assert store.spec == ArchSpec.siren() and len(store) == 9
    for row, sd in enumerate(expected):
        flat = torch.cat([v.reshape(-1) for v in sd.values()])
        assert torch.equal(store.params[row], flat)
    assert store.split.tolist() == [0] * 4 + [1] * 2 + [2] * 3
    assert store.labels.tolist() == [0, 1, 2, 3, 0, 1, 0, 1, 2]
    loaded = load_store(tmp_path / "store.pt")
    net = Siren()
    net.load_state_dict(expected[5])
    image = net(coordinate_grid(28, 28)).detach().view(28, 28, 1)
    torch.testing.assert_close(reconstruct(loaded, 5), image)


def test_wsa_format_with_views_and_labels_inside(tmp_path: Path) -> None:
    root = tmp_path / "fmnist_multiview"
    table: dict = {"train": [], "val": [], "test": []}
    for split, items in (("train", 3), ("val", 1), ("test", 2)):
        for item in range(items):
            for view in range(2 if split == "train" else 1):
                sd = dict(_inr(item * 10 + view))
                sd["label"] = torch.tensor(item + 3)
                rel = Path(split) / f"{item}" / f"view_{view}.pth"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                torch.save(sd, root / rel)
                table[split].append(str(rel))
    (root / "splits.json").write_text(json.dumps(table))
    store = import_wsa(root / "splits.json", progress=False)
    assert len(store) == 6 + 1 + 2
    assert store.view.tolist() == [0, 1, 0, 1, 0, 1, 0, 0, 0]
    assert store.source_index.tolist() == [0, 0, 1, 1, 2, 2, 3, 4, 5]  # views grouped per image
    assert store.labels.tolist() == [3, 3, 4, 4, 5, 5, 3, 3, 4]
    assert store.indices("train", views=1).tolist() == [0, 2, 4]


def test_an_inr_of_another_architecture_is_named(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    torch.save(_inr(0), root / "a.pth")
    wide = Siren(hidden_dim=64).state_dict()
    torch.save(wide, root / "b.pth")
    (root / "splits.json").write_text(
        json.dumps({"train": {"path": ["a.pth", "b.pth"], "label": [0, 1]}})
    )
    with pytest.raises(ValueError, match=r"b\.pth: seq\.0\.weight has shape \(64, 2\)"):
        import_dwsnets(root / "splits.json", tmp_path / "out.pt", progress=False)
    assert not (tmp_path / "out.pt").exists()  # nothing half-written


def test_missing_corrupt_and_label_less_files_are_named(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    (root / "splits.json").write_text(json.dumps({"train": ["gone.pth"]}))
    with pytest.raises(FileNotFoundError, match="INR file 'gone.pth'"):
        import_wsa(root / "splits.json", progress=False)
    (root / "gone.pth").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"gone\.pth is corrupt"):
        import_wsa(root / "splits.json", progress=False)
    torch.save(_inr(1), root / "gone.pth")
    with pytest.raises(ValueError, match=r"gone\.pth: no 'label' entry"):
        import_wsa(root / "splits.json", progress=False)
    (root / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        import_dwsnets(root / "bad.json", progress=False)
    nan_sd = {k: v.clone() for k, v in _inr(2).items()}
    nan_sd["seq.1.bias"][0] = float("nan")
    torch.save(nan_sd, root / "nan.pth")
    (root / "s.json").write_text(json.dumps({"test": {"path": ["nan.pth"], "label": [1]}}))
    with pytest.raises(ValueError, match=r"nan\.pth: seq\.1\.bias holds non-finite"):
        import_dwsnets(root / "s.json", progress=False)


def test_an_odd_first_file_is_pointed_at(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    torch.save(Siren(hidden_dim=64).state_dict(), root / "odd.pth")
    torch.save(_inr(0), root / "ok.pth")
    (root / "s.json").write_text(
        json.dumps({"train": {"path": ["odd.pth", "ok.pth"], "label": [0, 1]}})
    )
    with pytest.raises(
        ValueError, match=r"ok\.pth: .*read from the first file, odd\.pth.*pass spec="
    ):
        import_dwsnets(root / "s.json", progress=False)


# ---- exporters ---------------------------------------------------------------------------------


def _export_store(spec: ArchSpec, n_items: int = 6, views: int = 3) -> INRStore:
    """Rows view-major (the views of an item far apart), source ids neither 0.. nor contiguous,
    splits interleaved: nothing the exporters could get right by accident."""
    n = n_items * views
    item_split = torch.tensor([0, 2, 1, 0, 2, 0])[:n_items]
    return INRStore(
        params=random_params(spec, n, seed=3),
        labels=(torch.arange(n_items) * 7 % 10).repeat(views),
        view=torch.arange(views).repeat_interleave(n_items),
        source_index=(torch.arange(n_items) * 5 + 11).flip(0).repeat(views),
        split=item_split.repeat(views),
        psnr=torch.full((n,), 40.0),
        spec=spec,
        meta={"source": "test", "image_shape": [8, 8, 1]},
    )


def _split_order(store: INRStore) -> torch.Tensor:
    """The rows in the order the exporters write them: split by split, store order within."""
    return torch.cat([store.indices(s) for s in SPLITS])


def _first_seen(ids: torch.Tensor) -> list[int]:
    """Ids renumbered 0, 1, ... in order of first appearance (how the importers number items)."""
    seen: dict[int, int] = {}
    return [seen.setdefault(i, len(seen)) for i in ids.tolist()]


@pytest.mark.parametrize("spec", [ArchSpec.siren(hidden_dim=8), ArchSpec.mlp((3, 5, 4, 2))])
def test_export_dwsnets_round_trip(tmp_path: Path, spec: ArchSpec) -> None:
    store = _export_store(spec)
    save_store(store, tmp_path / "store.pt")
    splits = export_dwsnets(tmp_path / "store.pt", tmp_path / "dws", progress=False)
    assert splits == (tmp_path / "dws" / "splits.json").resolve()
    table = json.loads(splits.read_text())
    assert all(Path(p).is_absolute() for s in SPLITS for p in table[s]["path"])
    # each file is what DWSNets' INR module (and nngraph's Siren/MLP, same keys) loads
    first = torch.load(table["train"]["path"][0], weights_only=True)
    assert list(first) == [k for k, _ in spec.param_shapes]
    assert all(v.untyped_storage().nbytes() == 4 * v.numel() for v in first.values())  # no store
    back = import_dwsnets(splits, spec=None if spec.is_siren else spec, progress=False)
    order = _split_order(store)
    assert back.spec == spec
    assert torch.equal(back.params, store.params[order])
    assert torch.equal(back.labels, store.labels[order])
    assert torch.equal(back.split, store.split[order])
    # a subset of rows: only those are written, still split by split
    rows = torch.tensor([7, 1, 0])
    sub = export_dwsnets(store, tmp_path / "sub", rows=rows, progress=False)
    back = import_dwsnets(sub, spec=spec, progress=False)
    assert torch.equal(back.params, store.params[[0, 7, 1]])  # splits 0, 0, 2


def test_export_wsa_round_trip_keeps_views_and_items(tmp_path: Path) -> None:
    store = _export_store(ArchSpec.siren(hidden_dim=8))
    splits = export_wsa(store, tmp_path / "multiview", progress=False)
    table = json.loads(splits.read_text())
    assert table["train"][0] == "multiview/train/item_36/view_0.pth"  # as the reference names it
    saved = torch.load(tmp_path / table["train"][0], weights_only=True)
    assert saved["label"].dtype == torch.long and saved["label"].dim() == 0
    back = import_wsa(splits, progress=False)
    order = _split_order(store)
    assert back.spec == store.spec
    assert torch.equal(back.params, store.params[order])
    assert torch.equal(back.labels, store.labels[order])
    assert torch.equal(back.split, store.split[order])
    assert torch.equal(back.view, store.view[order])
    # the items: the same grouping of rows, numbered as the importer numbers them
    assert back.source_index.tolist() == _first_seen(store.source_index[order])
    assert len(back.source_index.unique()) == len(store.source_index.unique())
    train = back.indices("train", views=1)
    assert torch.equal(back.params[train], store.params[store.indices("train", views=1)])


def test_exporters_reject_bad_input_before_writing(tmp_path: Path) -> None:
    store = _export_store(ArchSpec.siren(hidden_dim=8))
    (tmp_path / "file").write_text("x")
    for export in (export_dwsnets, export_wsa):
        with pytest.raises(ValueError, match="out_dir .*file exists and is not a directory"):
            export(store, tmp_path / "file", progress=False)
        with pytest.raises(ValueError, match="nothing to export"):
            export(store, tmp_path / "out", rows=torch.tensor([], dtype=torch.long))
        with pytest.raises(ValueError, match=r"rows must lie in 0\.\.17"):
            export(store, tmp_path / "out", rows=torch.tensor([18]))
    with pytest.raises(ValueError, match="'inrs_views2' reads as a view number"):
        export_wsa(store, tmp_path / "inrs_views2", progress=False)
    twice = INRStore(**{**store.__dict__, "view": torch.zeros(len(store), dtype=torch.long)})
    with pytest.raises(ValueError, match="two rows of the train split are view 0 of source item"):
        export_wsa(twice, tmp_path / "out", progress=False)
    register_family(type("_Dense", (MLPFamily,), {"name": "test_dense"})())
    other = INRStore(**{**store.__dict__, "spec": ArchSpec((2, 8, 8, 1), family="test_dense")})
    with pytest.raises(ValueError, match="holds dense MLPs .*not family 'test_dense'"):
        export_dwsnets(other, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "inrs_views2").exists()
