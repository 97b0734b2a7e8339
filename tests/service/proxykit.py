"""Helpers shared by the proxy tests."""

from __future__ import annotations

import json

import torch

from zcscore.data import ArrayData


def random_data(n: int, seed: int, size: int = 32) -> ArrayData:
    """``n`` Gaussian 3 x size x size images with labels ``0..9`` cycling, as a fixed-seed stand-in for real data."""
    g = torch.Generator().manual_seed(seed)
    return ArrayData(torch.randn(n, 3, size, size, generator=g), torch.arange(n) % 10, "random")


# the smallest generic DAG with a conv, a ReLU and a head (for "runs on the dag space" checks)
TINY_DAG = json.dumps(
    {
        "input": [3, 32, 32],
        "nodes": [
            {"id": "c", "op": "conv", "in": ["input"], "out": 4, "k": 3},
            {"id": "r", "op": "relu", "in": ["c"]},
            {"id": "g", "op": "gap", "in": ["r"]},
            {"id": "fc", "op": "linear", "in": ["g"], "out": 10},
        ],
        "output": "fc",
    }
)
