"""Image sources that INR datasets are fitted from, all as ``[M, H, W, C]`` float32 in [0, 1].

``digits`` (scikit-learn's bundled 8x8 digits) works offline and is the default. ``mnist``,
``fashion_mnist`` and ``cifar10`` read the standard files under ``root`` (IDX files for the first
two, CIFAR-10's binary batches for the third), or go through torchvision when the ``vision``
extra is installed; nothing is downloaded unless ``download=True``. ``image_folder`` reads a user's
images, one folder per class.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["SOURCES", "ImageSource", "load_source", "read_idx"]


@dataclass
class ImageSource:
    """Images with labels and the source's own train/test split."""

    name: str
    images: Tensor  # [M, H, W, C] float32 in [0, 1]
    labels: Tensor  # [M] long
    is_test: Tensor  # [M] bool: in the source's own test split
    class_names: list[str]
    index: Tensor | None = None  # [M] long: position in the full source (set by ``subset``)

    def __post_init__(self) -> None:
        m = len(self.images)
        if self.index is None:
            self.index = torch.arange(m)
        if self.images.dim() != 4 or not self.images.is_floating_point():
            raise ValueError(
                f"{self.name}: images must be float [M, H, W, C], got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.shape != (m,) or self.is_test.shape != (m,):
            raise ValueError(
                f"{self.name}: {m} images but labels {tuple(self.labels.shape)} and split "
                f"{tuple(self.is_test.shape)}"
            )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, n: int, seed: int = 0) -> ImageSource:
        """A seeded random ``n`` images of each of the source's splits (a quick look at a big
        source that keeps its class mix; the first ``n`` of a sorted source would not)."""
        gen = torch.Generator().manual_seed(seed)
        parts = []
        for rows in ((~self.is_test).nonzero().flatten(), self.is_test.nonzero().flatten()):
            parts.append(rows[torch.randperm(len(rows), generator=gen)[:n]])
        keep = torch.cat(parts)
        keep = keep.sort().values
        return ImageSource(
            self.name,
            self.images[keep],
            self.labels[keep],
            self.is_test[keep],
            self.class_names,
            self.index[keep],
        )


def load_digits_source(**_: object) -> ImageSource:
    """scikit-learn's 1,797 8x8 digits (values 0..16 scaled to [0, 1]). They come without a test
    split; every fifth image (index % 5 == 4) is the test split, so it is the same everywhere."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(-1) / 16.0
    index = torch.arange(len(images))
    return ImageSource(
        "digits", images, torch.as_tensor(data.target, dtype=torch.long), index % 5 == 4,
        [str(i) for i in range(10)],
    )  # fmt: skip


_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
_CIFAR_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format; ``.gz`` too) into a uint8 array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except OSError as err:
        raise ValueError(f"cannot read IDX file {path}: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise ValueError(
            f"{path} is truncated or corrupt: {len(raw)} bytes, expected {expected} for "
            f"shape {dims}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _find(root: Path, names: list[str]) -> Path | None:
    for name in names:
        for candidate in (root / name, root / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _mnist_like(name: str, folder: str, classes: list[str], torchvision_name: str):
    def load(root: str | None = None, download: bool = False, **_: object) -> ImageSource:
        base = Path(root or ".").expanduser()
        dirs = [base, base / folder / "raw", base / folder]
        parts = {}
        for split, (images_name, labels_name) in _MNIST_FILES.items():
            found = [
                (_find(d, [images_name, images_name.replace("-idx", ".idx")]),
                 _find(d, [labels_name, labels_name.replace("-idx", ".idx")]))
                for d in dirs
            ]  # fmt: skip
            hit = next(((i, lab) for i, lab in found if i and lab), None)
            if hit is None:
                break
            parts[split] = (read_idx(hit[0]), read_idx(hit[1]))
        if len(parts) == 2:
            return _from_arrays(name, parts, classes)
        tv = _torchvision_dataset(torchvision_name, base, download)
        if tv is not None:
            return _from_arrays(name, tv, classes)
        raise ValueError(
            f"{name}: no IDX files under {base} (looked for {_MNIST_FILES['train'][0]}[.gz] and "
            f"the other three in {', '.join(str(d) for d in dirs)}). Put the files there "
            "(data.root), or install the vision extra and set data.download=true to fetch them."
        )

    return load


def _torchvision_dataset(cls_name: str, root: Path, download: bool):
    try:
        import torchvision.datasets as tvd
    except ImportError:
        return None
    cls = getattr(tvd, cls_name)
    try:
        splits = {
            s: cls(str(root), train=(s == "train"), download=download) for s in ("train", "test")
        }
    except RuntimeError:  # torchvision: "Dataset not found. You can use download=True ..."
        return None
    out = {}
    for split, ds in splits.items():
        data = ds.data.numpy() if isinstance(ds.data, Tensor) else np.asarray(ds.data)
        out[split] = (data, np.asarray(ds.targets))
    return out


def _from_arrays(
    name: str, parts: dict, classes: list[str], grayscale: bool = False
) -> ImageSource:
    images, labels, is_test = [], [], []
    for split in ("train", "test"):
        pixels, targets = parts[split]
        if len(pixels) != len(targets):
            raise ValueError(f"{name}: {len(pixels)} {split} images but {len(targets)} labels")
        array = torch.tensor(np.asarray(pixels), dtype=torch.float32) / 255.0
        if array.dim() == 3:
            array = array.unsqueeze(-1)
        if grayscale and array.shape[-1] == 3:
            array = _to_gray(array)
        images.append(array)
        labels.append(torch.as_tensor(np.asarray(targets), dtype=torch.long))
        is_test.append(torch.full((len(array),), split == "test"))
    return ImageSource(name, torch.cat(images), torch.cat(labels), torch.cat(is_test), classes)


def _to_gray(images: Tensor) -> Tensor:
    """ITU-R 601 luma, as PIL's ``convert("L")``."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype)
    return (images * weights).sum(dim=-1, keepdim=True)


def load_cifar10(
    root: str | None = None, download: bool = False, grayscale: bool = False, **_: object
) -> ImageSource:
    """CIFAR-10 from its binary batches (``cifar-10-batches-bin/*.bin``) or through torchvision."""
    base = Path(root or ".").expanduser()
    bin_dir = next(
        (d for d in (base / "cifar-10-batches-bin", base) if (d / "test_batch.bin").is_file()), None
    )
    if bin_dir is not None:
        parts = {
            "train": _read_cifar_bins([bin_dir / f"data_batch_{i}.bin" for i in range(1, 6)]),
            "test": _read_cifar_bins([bin_dir / "test_batch.bin"]),
        }
        return _from_arrays("cifar10", parts, _CIFAR_CLASSES, grayscale)
    tv = _torchvision_dataset("CIFAR10", base, download)
    if tv is not None:
        return _from_arrays("cifar10", tv, _CIFAR_CLASSES, grayscale)
    raise ValueError(
        f"cifar10: no binary batches under {base} (looked for "
        "cifar-10-batches-bin/test_batch.bin). Put CIFAR-10's binary version there (data.root), "
        "or install the vision extra and set data.download=true."
    )


def _read_cifar_bins(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    record = 1 + 3 * 32 * 32
    pixels, labels = [], []
    for path in paths:
        if not path.is_file():
            raise ValueError(f"cifar10: missing batch file {path}")
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % record:
            raise ValueError(
                f"{path} is truncated or corrupt: {raw.size} bytes is not a whole number of "
                f"{record}-byte records"
            )
        rows = raw.reshape(-1, record)
        labels.append(rows[:, 0].astype(np.int64))
        pixels.append(rows[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return np.concatenate(pixels), np.concatenate(labels)


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def load_image_folder(
    root: str | None = None,
    grayscale: bool = True,
    image_size: list[int] | tuple[int, int] | None = None,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    **_: object,
) -> ImageSource:
    """A user's images: ``root/<class>/*.png`` (a seeded ``test_fraction`` becomes the test
    split), or ``root/train/<class>/...`` and ``root/test/<class>/...``. Every image must have the
    same size unless ``image_size=(H, W)`` resizes them."""
    from PIL import Image, UnidentifiedImageError

    if root is None:
        raise ValueError("image_folder needs data.root: a folder with one sub-folder per class")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise ValueError(f"image_folder: {base} is not a folder")
    layout = {"train": base / "train", "test": base / "test"}
    split_dirs = layout if all(d.is_dir() for d in layout.values()) else {"all": base}
    classes = sorted({d.name for sd in split_dirs.values() for d in sd.iterdir() if d.is_dir()})
    if not classes:
        raise ValueError(f"image_folder: no class folders under {base}")
    images, labels, is_test, size = [], [], [], None
    for split, folder in split_dirs.items():
        for label, cls in enumerate(classes):
            for path in sorted((folder / cls).glob("*")) if (folder / cls).is_dir() else []:
                if path.suffix.lower() not in _IMAGE_SUFFIXES:
                    continue
                try:
                    with Image.open(path) as img:
                        img = img.convert("L" if grayscale else "RGB")
                        if image_size is not None:
                            img = img.resize((int(image_size[1]), int(image_size[0])))
                        array = np.asarray(img, dtype=np.uint8)
                except (UnidentifiedImageError, OSError) as err:
                    raise ValueError(f"image_folder: cannot read image {path}: {err}") from err
                if size is None:
                    size = array.shape
                elif array.shape != size:
                    raise ValueError(
                        f"image_folder: {path} is {array.shape[0]}x{array.shape[1]} (HxW) but "
                        f"earlier images are {size[0]}x{size[1]}; set data.image_size=[H, W] to "
                        "resize them all"
                    )
                images.append(array)
                labels.append(label)
                is_test.append(split == "test")
    if not images:
        raise ValueError(
            f"image_folder: no images ({', '.join(sorted(_IMAGE_SUFFIXES))}) under {base}"
        )
    pixels = torch.from_numpy(np.stack(images)).float() / 255.0
    if pixels.dim() == 3:
        pixels = pixels.unsqueeze(-1)
    test = torch.tensor(is_test)
    if "all" in split_dirs:
        gen = torch.Generator().manual_seed(split_seed)
        test = torch.rand(len(pixels), generator=gen) < test_fraction
    return ImageSource("image_folder", pixels, torch.tensor(labels), test, classes)


SOURCES: dict[str, Callable[..., ImageSource]] = {
    "digits": load_digits_source,
    "mnist": _mnist_like("mnist", "MNIST", [str(i) for i in range(10)], "MNIST"),
    "fashion_mnist": _mnist_like("fashion_mnist", "FashionMNIST", _FASHION_CLASSES, "FashionMNIST"),
    "cifar10": load_cifar10,
    "image_folder": load_image_folder,
}


def load_source(name: str, **options: object) -> ImageSource:
    """Load the named source; ``options`` (``root``, ``download``, ``grayscale``, ``image_size``,
    ...) go to its loader, which ignores those it has no use for."""
    if name not in SOURCES:
        raise ValueError(f"unknown image source {name!r}; known: {', '.join(sorted(SOURCES))}")
    return SOURCES[name](**options)
