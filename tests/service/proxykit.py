"""Helpers shared by the proxy tests."""

from __future__ import annotations

import torch

from zcscore.data import ArrayData


def random_data(n: int, seed: int, size: int = 32) -> ArrayData:
    """``n`` Gaussian 3 x size x size images with labels ``0..9`` cycling, as a fixed-seed stand-in for real data."""
    g = torch.Generator().manual_seed(seed)
    return ArrayData(torch.randn(n, 3, size, size, generator=g), torch.arange(n) % 10, "random")
