"""Every catalogue proxy scores NAS-Bench-101 and generic DAG modules, and MobileNetV2 where it is defined there."""

from __future__ import annotations

import json
import math

import pytest

from zcscore.engine import Engine, ScoreConfig
from zcscore.proxies.catalog import get_spec, list_specs
from zcscore.spaces import get_space
from zcscore.spaces.dag import EXAMPLE as DAG_EXAMPLE

# one conv and one pool between input and output: every proxy has weights, activations and a path to the logits
NB101_CELL = json.dumps(
    {
        "matrix": [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
        "ops": ["input", "conv1x1-bn-relu", "maxpool3x3", "output"],
    }
)
MBV2_NET = "r32-s16-[e1k3s1d1w16][e4k5s2d2w24se][e2k3s2d1w32]-l128"
ARCHS = {"nb101": NB101_CELL, "dag": json.dumps(DAG_EXAMPLE), "mbv2": MBV2_NET}


def _defined_on(space_name: str) -> list[str]:
    space = get_space(space_name)
    return [s.name for s in list_specs() if space.unsupported(s.name) is None]


# NB101's network is 128-512 channels wide: the whole catalogue takes about 2 min on one CPU core, so on demand
SPACES = ["dag", "mbv2", pytest.param("nb101", marks=pytest.mark.slow)]


@pytest.mark.parametrize("space_name", SPACES)
def test_every_defined_proxy_scores_the_space(space_name: str) -> None:
    """One engine call per space: no error and a finite score from every proxy the space supports."""
    names = _defined_on(space_name)
    records = Engine(names, ScoreConfig(threads=1)).score_archs([ARCHS[space_name]], space=space_name)
    by_proxy = {r.proxy: r for r in records}
    assert set(names) <= set(by_proxy)
    for name in names:
        rec = by_proxy[name]
        assert rec.error is None, (space_name, name, rec.error)
        assert math.isfinite(rec.score), (space_name, name, rec.score)


def test_which_proxies_each_space_declares_unsupported() -> None:
    """NB101 and DAG modules take every proxy; MobileNetV2 refuses exactly the ones that read real CIFAR-10 images."""
    everything = [s.name for s in list_specs()]
    assert _defined_on("nb101") == everything and _defined_on("dag") == everything
    refused = sorted(set(everything) - set(_defined_on("mbv2")))
    assert refused == sorted(s.name for s in list_specs() if get_spec(s.name).needs_data)
    for name in ("grad_norm", "snip", "grasp", "fisher", "jacov", "naswot", "meco", "swap", "tenas", "vkdnw_agg"):
        assert name in refused
    for name in ("synflow", "zen", "tenas_lr", "vkdnw", "az_nas", "intrain", "params", "flops"):
        assert name not in refused
