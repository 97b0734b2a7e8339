"""Real image batches for data-dependent proxies.

The default source is the fixed 2,560-image CIFAR-10 train subset resolved by :mod:`zcscore.data_source`
(``cifar10_subset.npz`` or a ``cifar-10-batches-py/`` folder in the data dir, else the cache dir, else a
one-time download), normalised with the xautodl CIFAR-10 constants exactly as torchvision ``ToTensor()`` +
``Normalize()`` compute it. Batches are taken in file order (rows ``64j .. 64j+63``), as in
``nb201_reference_official.csv``. Any user dataset can be wrapped with :func:`as_array_data`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sized
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from zcscore.data_source import N_ROWS, DataSource, load_subset_arrays, require_data_source, source_from_path

XAUTODL_CIFAR10_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
XAUTODL_CIFAR10_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)


def tensor_digest(images: torch.Tensor, labels: torch.Tensor) -> str:
    """sha256 hex of the float32 contiguous image bytes followed by the int64 label bytes."""
    h = hashlib.sha256(images.detach().to("cpu", torch.float32).contiguous().numpy().data)
    h.update(labels.detach().to("cpu", torch.int64).contiguous().numpy().data)
    return h.hexdigest()


@dataclass(frozen=True)
class ArrayData:
    """Images (N,C,H,W float32, already normalised) and integer labels, with an id for provenance."""

    images: torch.Tensor
    labels: torch.Tensor
    source_id: str
    digest: str = ""  # sha256 of the content; "" for hand-built data (see ``content_digest``)

    @cached_property
    def content_digest(self) -> str:
        """``digest`` if given, else the sha256 of the tensors (:func:`tensor_digest`, computed once)."""
        return self.digest or tensor_digest(self.images, self.labels)

    def rows(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels for rows ``start .. stop-1``; raises if the dataset is too small."""
        if stop > len(self.images):
            raise ValueError(f"dataset {self.source_id} has {len(self.images)} rows, {stop} needed")
        return self.images[start:stop], self.labels[start:stop]

    def batch(self, j: int, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """The j-th consecutive batch of ``size`` rows."""
        return self.rows(j * size, (j + 1) * size)


def normalise_uint8_hwc(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 HWC images -> float32 NCHW, ``(x/255 - mean)/std`` with torchvision's float32 arithmetic."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(255)
    m = torch.tensor(mean, dtype=torch.float64).to(torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float64).to(torch.float32).view(1, -1, 1, 1)
    return x.sub(m).div(s).contiguous()


_REAL: dict[str, ArrayData] = {}
_REAL_LOCK = threading.Lock()
_REAL_MAX = 4


def load_real_data(source: DataSource) -> ArrayData:
    """The subset at ``source`` as normalised tensors (cached per digest)."""
    with _REAL_LOCK:
        hit = _REAL.get(source.digest)
        if hit is not None:
            return hit
        x, y = load_subset_arrays(source)
        data = ArrayData(
            images=normalise_uint8_hwc(x, XAUTODL_CIFAR10_MEAN, XAUTODL_CIFAR10_STD),
            labels=torch.from_numpy(y.astype(np.int64)),
            source_id=source.source_id,
            digest=source.digest,
        )
        if len(_REAL) >= _REAL_MAX:
            _REAL.pop(next(iter(_REAL)))
        _REAL[source.digest] = data
        return data


def default_real_data() -> ArrayData:
    """The resolved real CIFAR-10 subset (data dir, cache dir, or a one-time download)."""
    return load_real_data(require_data_source())


def load_cifar10_subset(path: str | Path | None = None) -> ArrayData:
    """The real CIFAR-10 subset from ``path`` (an npz or a ``cifar-10-batches-py/`` folder), else the resolved one."""
    if path is None:
        return default_real_data()
    return load_real_data(source_from_path(Path(path)))


def _images_tensor(images: Any) -> torch.Tensor:
    """User images -> float32 NCHW: uint8 HWC are normalised with the xautodl constants, floats taken as is."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu()
        if images.dtype == torch.uint8:
            images = images.numpy()
    elif not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a torch.Tensor or numpy array, got {type(images).__name__}")
    if isinstance(images, np.ndarray) and images.dtype == np.uint8:
        if images.ndim != 4 or images.shape[-1] != len(XAUTODL_CIFAR10_MEAN):
            raise ValueError(f"uint8 images must be N,H,W,3 (HWC RGB), got shape {images.shape}")
        return normalise_uint8_hwc(images, XAUTODL_CIFAR10_MEAN, XAUTODL_CIFAR10_STD)
    x = torch.as_tensor(images)
    if not x.is_floating_point():
        raise ValueError(f"images must be uint8 HWC or floating NCHW, got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"float images must be N,C,H,W (already normalised), got shape {tuple(x.shape)}")
    return x.to(torch.float32).contiguous()


def _labels_tensor(labels: Any, n: int) -> torch.Tensor:
    y = torch.as_tensor(labels.detach().cpu() if isinstance(labels, torch.Tensor) else np.asarray(labels))
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    y = y.to(torch.int64).reshape(-1)
    if len(y) != n:
        raise ValueError(f"{n} images but {len(y)} labels")
    return y.contiguous()


def _from_dataset(ds: Dataset[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack the first ``min(len, 2560)`` ``(x, y)`` items of a map-style dataset (x a CHW float tensor)."""
    if isinstance(ds, IterableDataset) or not isinstance(ds, Sized):
        raise TypeError("only map-style datasets with __len__ are supported (items (x, y), x a CHW float tensor)")
    n = min(len(ds), N_ROWS)
    if n == 0:
        raise ValueError("the dataset is empty")
    xs: list[torch.Tensor] = []
    ys: list[int] = []
    for i in range(n):
        item = ds[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise TypeError(f"dataset item {i} is not an (x, y) pair")
        x = torch.as_tensor(item[0])
        if x.ndim != 3 or not x.is_floating_point():
            raise ValueError(f"dataset item {i}: x must be a CHW float tensor, got {x.dtype}{tuple(x.shape)}")
        xs.append(x.detach().cpu().to(torch.float32))
        ys.append(int(item[1]))
    return torch.stack(xs).contiguous(), torch.tensor(ys, dtype=torch.int64)


def as_array_data(obj: Any) -> ArrayData:
    """User data as :class:`ArrayData`: an ArrayData, a DataSource, an ``(images, labels)`` pair, or a Dataset."""
    if isinstance(obj, ArrayData):
        return obj
    if isinstance(obj, DataSource):
        return load_real_data(obj)
    if isinstance(obj, Dataset):
        images, labels = _from_dataset(obj)
    elif isinstance(obj, (tuple, list)) and len(obj) == 2:
        images = _images_tensor(obj[0])
        labels = _labels_tensor(obj[1], len(images))
    else:
        raise TypeError(
            "data must be ArrayData, an (images, labels) pair of tensors/arrays, or a map-style "
            f"torch Dataset; got {type(obj).__name__}"
        )
    digest = tensor_digest(images, labels)
    return ArrayData(images, labels, source_id=f"user:{digest[:12]}", digest=digest)
