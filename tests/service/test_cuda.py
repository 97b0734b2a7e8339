"""CUDA path: the same engine code on the GPU agrees with the CPU (skipped without CUDA)."""

from __future__ import annotations

import math

import pytest

from zcscore.engine import Engine, ScoreConfig
from zcscore.proxies.catalog import list_specs

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|none~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|skip_connect~1|none~2|",
]


@pytest.mark.gpu
def test_cuda_scores_agree_with_cpu():
    proxies = [s.name for s in list_specs()]
    cpu = Engine(proxies, ScoreConfig(device="cpu")).score_archs(ARCHS)
    gpu = Engine(proxies, ScoreConfig(device="cuda")).score_archs(ARCHS)
    for a, b in zip(cpu, gpu):
        assert (a.arch, a.proxy) == (b.arch, b.proxy)
        assert a.error is None and b.error is None, (a.proxy, a.error, b.error)
        if math.isnan(a.score) or math.isinf(a.score):
            assert math.isnan(b.score) if math.isnan(a.score) else a.score == b.score, (a.proxy, a.score, b.score)
        else:
            assert b.score == pytest.approx(a.score, rel=0.05, abs=1e-6), (a.arch, a.proxy)
        assert b.provenance["device"] == "cuda"
