"""Importers for published INR datasets, tested on small fixtures written in their formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nngraph.data import import_dwsnets, import_wsa, load_store, reconstruct
from nngraph.graph import ArchSpec
from nngraph.inr import Siren
from nngraph.inr.functional import coordinate_grid


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
