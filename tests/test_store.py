"""The one-file INR store: round trip, memory-mapped loads, splits, corrupt files, atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nngraph.data import INRStore, assign_splits, load_store, reconstruct, save_store
from nngraph.graph import ArchSpec
from nngraph.inr import mlp_forward
from nngraph.inr.functional import coordinate_grid


def _store(n_items: int = 10, views: int = 2) -> INRStore:
    spec = ArchSpec.siren(hidden_dim=8)
    n = n_items * views
    item_split = assign_splits(torch.arange(n_items) % 5 == 4, val_fraction=0.25, seed=0)
    return INRStore(
        params=torch.randn(n, spec.num_params) / 30,
        labels=torch.arange(n_items).repeat_interleave(views) % 3,
        view=torch.arange(views).repeat(n_items),
        source_index=torch.arange(n_items).repeat_interleave(views),
        split=item_split.repeat_interleave(views),
        psnr=torch.rand(n) * 10 + 35,
        spec=spec,
        meta={"source": "test", "image_shape": [5, 6, 1], "class_names": ["a", "b", "c"]},
    )


def test_round_trip_memory_mapped(tmp_path: Path) -> None:
    store = _store()
    path = save_store(store, tmp_path / "s.pt")
    for mmap in (True, False):
        loaded = load_store(path, mmap=mmap)
        assert loaded.spec == store.spec and loaded.meta == store.meta
        for name in ("params", "labels", "view", "source_index", "split", "psnr"):
            assert torch.equal(getattr(loaded, name), getattr(store, name)), name
    assert len(loaded) == 20 and loaded.num_classes == 3
    assert "20 INRs" in loaded.summary()
    assert [p.name for p in tmp_path.iterdir()] == ["s.pt"]  # no temporary files left


def test_splits_keep_views_together_and_follow_the_source() -> None:
    store = _store(n_items=40, views=3)
    for item in range(40):
        rows = store.source_index == item
        assert len(set(store.split[rows].tolist())) == 1
    test_items = set(store.source_index[store.indices("test")].tolist())
    assert test_items == {i for i in range(40) if i % 5 == 4}
    n_val_items = len(set(store.source_index[store.indices("val")].tolist()))
    assert n_val_items == round(0.25 * 32)
    assert torch.equal(store.view[store.indices("train", views=1)].unique(), torch.tensor([0]))
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        store.indices("dev")


def test_reconstruct_renders_with_the_stored_size() -> None:
    store = _store()
    one = reconstruct(store, 3)
    assert one.shape == (5, 6, 1)
    expected = mlp_forward(store.params[3:4], coordinate_grid(5, 6), store.spec).view(5, 6, 1)
    torch.testing.assert_close(one, expected)
    assert reconstruct(store, torch.tensor(3)).shape == (5, 6, 1)  # a 0-d index is one INR
    many = reconstruct(store, torch.tensor([0, 3]), height=16, width=16)
    assert many.shape == (2, 16, 16, 1)


def test_missing_corrupt_truncated_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="INR store not found"):
        load_store(tmp_path / "nope.pt")
    path = save_store(_store(), tmp_path / "s.pt")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.pt is corrupt, truncated"):
        load_store(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a zip" * 100)
    with pytest.raises(ValueError, match="garbage.pt is corrupt"):
        load_store(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not an nngraph INR store"):
        load_store(foreign)
    payload = torch.load(path, weights_only=True)
    payload["labels"] = payload["labels"][:-1]
    torch.save(payload, tmp_path / "inconsistent.pt")
    with pytest.raises(ValueError, match="inconsistent INR store: INRStore.labels"):
        load_store(tmp_path / "inconsistent.pt")


def test_a_failed_save_leaves_the_old_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_store(_store(), tmp_path / "s.pt")
    before = path.read_bytes()

    def broken_save(obj, handle):
        handle.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_store(_store(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.pt"]


def test_store_validates_its_fields(tmp_path: Path) -> None:
    store = _store()
    with pytest.raises(ValueError, match=r"params must be \[N, 105\]"):
        INRStore(**{**store.__dict__, "params": torch.zeros(20, 7)})
    with pytest.raises(ValueError, match="split holds codes outside"):
        INRStore(**{**store.__dict__, "split": torch.full((20,), 3)})
    with pytest.raises(ValueError, match="meta.when must hold plain"):
        save_store(INRStore(**{**store.__dict__, "meta": {"when": object()}}), tmp_path / "x.pt")


def test_columns_round_trip_and_psnr_is_optional(tmp_path: Path) -> None:
    store = _store()
    n = len(store)
    kw = {k: getattr(store, k) for k in ("params", "labels", "view", "source_index", "split")}
    columns = {"test_acc": torch.rand(n), "epochs": torch.arange(n)}
    zoo = INRStore(**kw, spec=store.spec, columns=columns)
    assert bool(torch.isnan(zoo.psnr).all())
    back = load_store(save_store(zoo, tmp_path / "zoo.pt"))
    assert back.columns.keys() == columns.keys()
    assert all(torch.equal(back.columns[k], v) for k, v in columns.items())
    with pytest.raises(ValueError, match=r"columns\['acc'\] must be a tensor of shape \[20\]"):
        INRStore(**kw, spec=store.spec, columns={"acc": torch.rand(3)})
    with pytest.raises(ValueError, match=r"columns\['acc'\] must be float32 or int64"):
        INRStore(**kw, spec=store.spec, columns={"acc": torch.rand(n, dtype=torch.float64)})
