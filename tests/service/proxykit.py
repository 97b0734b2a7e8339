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


# the seed-proxy sample shared by the correlation and batched checks (conftest.seed_sample)
SEED_PROXIES = ["intrain", "intrain_pr", "intrain_grad", "intrain_add", "epsinas", "az_nas", "xi_gsnr", "zico"]
AZ_PARTS = ["az_expressivity", "az_progressivity", "az_trainability", "az_complexity"]
EDGE_CASES = [
    "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",  # identity cells: trainability -inf
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # zero features: NaN entropies, epsinas NaN
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|none~1|avg_pool_3x3~2|",
]
SAMPLE = 30  # NB201 archs (seed 2026) of the correlation check; the batched check takes 17 of them + EDGE_CASES
SAMPLE_CONFIG = {"seed": 1, "threads": 2}
