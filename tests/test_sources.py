"""Image sources: bundled digits, and the standard file formats read from small local fixtures."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nngraph.data import load_source
from nngraph.data.sources import read_idx


def _write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)


def _mnist_fixture(root: Path, folder: str, compress: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28))
    labels = rng.integers(0, 10, size=7)
    raw = root / folder / "raw"
    for prefix, part in (("train", slice(0, 5)), ("t10k", slice(5, 7))):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images[part], compress)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels[part], compress)
    return images, labels


def test_digits_is_the_offline_default() -> None:
    src = load_source("digits")
    assert src.images.shape == (1797, 8, 8, 1) and src.images.dtype == torch.float32
    assert float(src.images.min()) == 0.0 and float(src.images.max()) == 1.0
    assert torch.equal(src.is_test, torch.arange(1797) % 5 == 4)
    assert src.class_names == [str(i) for i in range(10)]
    sub = src.subset(3)
    assert int(sub.is_test.sum()) == 3 and int((~sub.is_test).sum()) == 3
    assert torch.equal(sub.index, src.subset(3).index)  # seeded: the same rows every time
    assert not torch.equal(sub.index, src.subset(3, seed=1).index)
    assert torch.equal(sub.images, src.images[sub.index])
    assert torch.equal(sub.is_test, sub.index % 5 == 4)
    # a random pick keeps the class mix (the first 100 test digits are mostly 4s and 9s)
    test_labels = src.subset(100).labels[src.subset(100).is_test]
    assert torch.bincount(test_labels, minlength=10).max() < 25


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
@pytest.mark.parametrize("compress", [False, True])
def test_mnist_formats_from_idx_files(
    tmp_path: Path, name: str, folder: str, compress: bool
) -> None:
    images, labels = _mnist_fixture(tmp_path, folder, compress)
    src = load_source(name, root=str(tmp_path))
    assert src.images.shape == (7, 28, 28, 1)
    torch.testing.assert_close(src.images[..., 0], torch.tensor(images, dtype=torch.float32) / 255)
    assert torch.equal(src.labels, torch.tensor(labels))
    assert torch.equal(src.is_test, torch.tensor([False] * 5 + [True] * 2))


def test_mnist_missing_and_truncated_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no IDX files under .*data.download=true"):
        load_source("mnist", root=str(tmp_path))
    _mnist_fixture(tmp_path, "MNIST", compress=False)
    bad = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-10])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte is truncated or corrupt"):
        load_source("mnist", root=str(tmp_path))
    (tmp_path / "junk").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="bad magic number"):
        read_idx(tmp_path / "junk")


def test_cifar10_binary_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    records = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, size=2).astype(np.uint8)
        planes = rng.integers(0, 256, size=(2, 3, 32, 32)).astype(np.uint8)  # R, G, B planes
        (folder / f"{name}.bin").write_bytes(
            np.concatenate([labels[:, None], planes.reshape(2, -1)], axis=1).tobytes()
        )
        records[name] = (labels, planes)
    src = load_source("cifar10", root=str(tmp_path))
    assert src.images.shape == (12, 32, 32, 3)
    labels, planes = records["data_batch_1"]
    expected = torch.tensor(planes[0].transpose(1, 2, 0), dtype=torch.float32) / 255
    torch.testing.assert_close(src.images[0], expected)
    assert src.labels[0] == int(labels[0]) and int(src.is_test.sum()) == 2
    gray = load_source("cifar10", root=str(tmp_path), grayscale=True)
    assert gray.images.shape == (12, 32, 32, 1)
    torch.testing.assert_close(
        gray.images[0, ..., 0], (expected * torch.tensor([0.299, 0.587, 0.114])).sum(-1)
    )
    (folder / "data_batch_3.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="data_batch_3.bin is truncated or corrupt"):
        load_source("cifar10", root=str(tmp_path))


def _png(path: Path, size: tuple[int, int], value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0]), value, dtype=np.uint8)).save(path)


def test_image_folder(tmp_path: Path) -> None:
    for cls, value in (("cats", 50), ("dogs", 200)):
        for i in range(5):
            _png(tmp_path / "imgs" / cls / f"{i}.png", (10, 12), value)
    src = load_source("image_folder", root=str(tmp_path / "imgs"), test_fraction=0.4)
    assert src.images.shape == (10, 12, 10, 1) and src.class_names == ["cats", "dogs"]
    assert torch.equal(src.labels, torch.tensor([0] * 5 + [1] * 5))
    assert float(src.images[0].max()) == pytest.approx(50 / 255)
    assert 0 < int(src.is_test.sum()) < 10
    _png(tmp_path / "imgs" / "dogs" / "odd.png", (16, 16), 0)
    with pytest.raises(ValueError, match=r"odd.png is 16x16 \(HxW\) but earlier images are 12x10"):
        load_source("image_folder", root=str(tmp_path / "imgs"))
    resized = load_source("image_folder", root=str(tmp_path / "imgs"), image_size=[8, 8])
    assert resized.images.shape == (11, 8, 8, 1)
    (tmp_path / "imgs" / "dogs" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image .*broken.png"):
        load_source("image_folder", root=str(tmp_path / "imgs"), image_size=[8, 8])


def test_image_folder_with_train_and_test(tmp_path: Path) -> None:
    for split, n in (("train", 3), ("test", 2)):
        for i in range(n):
            _png(tmp_path / split / "a" / f"{i}.png", (4, 4), 10)
    src = load_source("image_folder", root=str(tmp_path), grayscale=False)
    assert src.images.shape == (5, 4, 4, 3)
    assert torch.equal(src.is_test, torch.tensor([False] * 3 + [True] * 2))


def test_unknown_source_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown image source 'imagenet'; known: cifar10, digits"):
        load_source("imagenet")
