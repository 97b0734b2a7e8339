"""Engine: fresh-state protocol, isomorph dedup, provenance, error isolation, generic modules."""

from __future__ import annotations

import math

import torch
from torch import nn

from zcscore.engine import ArchContext, Engine, ScoreConfig, seed_everything
from zcscore.proxies.catalog import list_specs
from zcscore.proxies.registry import registered_names
from zcscore.spaces.nb201 import EXAMPLE_ARCH, NB201Arch
from zcscore.spaces.nb201_net import build_nb201

ISO_A = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|"
ISO_B = "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_every_catalogue_proxy_is_implemented():
    direct = {s.name for s in list_specs() if not s.population}
    assert registered_names() == direct


def test_restore_gives_seeded_fresh_network():
    seed_everything(7)
    net = build_nb201(EXAMPLE_ARCH)
    ctx = ArchContext(net, ScoreConfig(seed=7, channels_last=False), torch.get_rng_state())
    expected_draw = torch.randn(5)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net(torch.randn(2, 3, 32, 32))  # moves BN running stats
    ctx.restore()
    seed_everything(7)
    fresh = build_nb201(EXAMPLE_ARCH)
    after_build = torch.randn(5)
    for (k, a), (_, b) in zip(net.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), k
    ctx.restore()
    assert torch.equal(torch.randn(5), after_build)
    assert torch.equal(after_build, expected_draw)


def test_isomorphs_are_scored_once_and_labelled_with_their_own_string():
    calls = []
    engine = Engine(["params", "flops"], ScoreConfig())
    records = engine.score_archs([ISO_A, ISO_B, ISO_A], on_records=calls.append)
    assert len(calls) == 1
    assert [r.arch for r in records] == [ISO_A, ISO_A, ISO_B, ISO_B, ISO_A, ISO_A]
    assert records[0].score == records[2].score
    assert records[0].provenance["scored_as"] == NB201Arch.parse(ISO_A).canonical().to_str()


def test_provenance_is_complete():
    (rec,) = Engine(["flops"], ScoreConfig(seed=3)).score_archs([EXAMPLE_ARCH])
    for key in ("proxy_version", "seed", "input_protocol", "device", "torch", "numpy", "zcscore"):
        assert key in rec.provenance
    assert rec.provenance["seed"] == 3 and rec.seconds >= 0 and rec.error is None


class Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


def test_a_failing_network_yields_nan_with_error_not_an_exception():
    recs = Engine(["flops", "params"]).score_module(Broken())
    by = {r.proxy: r for r in recs}
    assert math.isnan(by["flops"].score) and "boom" in by["flops"].error
    assert math.isnan(by["params"].score)  # params shares the failed static pass


def test_generic_module_static_proxies():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)
    )
    by = {r.proxy: r.score for r in Engine(["params", "flops"]).score_module(model)}
    assert by["params"] == (3 * 8 * 9 + 8 + 8 * 10 + 10) / 1e6
    assert by["flops"] == (3 * 8 * 9 * 1024 + 8 * 1024 + 8 * 10 + 10) / 1e6
