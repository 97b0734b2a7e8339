"""Real image batches for data-dependent proxies.

The default source is ``cifar10_subset.npz`` from the shared data dir, normalised with the xautodl
CIFAR-10 constants exactly as torchvision ``ToTensor()`` + ``Normalize()`` compute it. Batches are taken
in file order (rows ``64j .. 64j+63``), as in ``nb201_reference_official.csv``. Any user dataset can be
wrapped in :class:`ArrayData`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch

from service.settings import get_settings

XAUTODL_CIFAR10_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
XAUTODL_CIFAR10_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)


@dataclass(frozen=True)
class ArrayData:
    """Images (N,C,H,W float32, already normalised) and integer labels, with an id for provenance."""

    images: torch.Tensor
    labels: torch.Tensor
    source_id: str

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


@cache
def load_cifar10_subset(path: str | None = None) -> ArrayData:
    """The shared real CIFAR-10 subset (2,560 train images), normalised with the xautodl constants."""
    file = Path(path) if path else get_settings().data_path / "cifar10_subset.npz"
    if not file.exists():
        raise FileNotFoundError(f"real data not found at {file}; set ZCSCORE_DATA_DIR to the shared data dir")
    raw = file.read_bytes()
    with np.load(file) as npz:
        images = normalise_uint8_hwc(npz["train_x"], XAUTODL_CIFAR10_MEAN, XAUTODL_CIFAR10_STD)
        labels = torch.from_numpy(npz["train_y"].astype(np.int64))
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return ArrayData(images, labels, source_id=f"cifar10_subset:{digest}")
