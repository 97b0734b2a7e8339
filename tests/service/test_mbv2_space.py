"""MobileNetV2 space: encodings, validation, closed-form costs against the built network, budgeted search."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from zcscore.spaces.base import SpaceError
from zcscore.spaces.mbv2 import (
    KERNELS,
    LAST_WIDTHS,
    MOBILENET_V2_1_0,
    SEARCH_STAGES,
    STEM_WIDTHS,
    MBV2Arch,
    MBV2Space,
    Stage,
    macs,
    params,
)
from zcscore.spaces.mbv2_net import build_mbv2

CANONICAL = (
    "r224-s32-[e1k3s1d1w16][e6k3s2d2w24][e6k3s2d3w32][e6k3s2d4w64][e6k3s1d3w96][e6k3s2d3w160][e6k3s1d1w320]-l1280"
)


def _counted_macs(net: torch.nn.Module, resolution: int) -> float:
    net.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, resolution, resolution))
    return counter.get_total_flops() / 2


def test_canonical_mobilenet_v2_costs() -> None:
    space = MBV2Space()
    assert MOBILENET_V2_1_0.encode() == CANONICAL
    assert params(MOBILENET_V2_1_0) == 3_504_872  # torchvision mobilenet_v2
    assert abs(params(MOBILENET_V2_1_0) / 3.50e6 - 1) < 0.01
    assert abs(macs(MOBILENET_V2_1_0) / 300e6 - 1) < 0.01
    assert space.flops_m(MOBILENET_V2_1_0) == pytest.approx(300.774272)
    assert space.params_m(MOBILENET_V2_1_0) == pytest.approx(3.504872)
    assert space.input_shape == (3, 224, 224)
    assert space.input_shape_for(MOBILENET_V2_1_0) == (3, 224, 224)
    assert space.input_shape_for(replace(MOBILENET_V2_1_0, resolution=160)) == (3, 160, 160)


def test_canonical_network_matches_closed_form_at_64() -> None:
    arch = replace(MOBILENET_V2_1_0, resolution=64)
    net = build_mbv2(arch)
    assert sum(p.numel() for p in net.parameters()) == params(arch)
    assert _counted_macs(net, 64) == macs(arch)


def test_random_archs_closed_form_matches_module() -> None:
    rng = random.Random(7)
    archs = [MBV2Space(resolution=r, search_se=True).sample(rng) for r in (32, 48, 64, 64, 64, 56, 40, 64, 72, 33)]
    for i, arch in enumerate(archs):
        num_classes = (10, 1000)[i % 2]
        net = build_mbv2(arch, num_classes)
        assert sum(p.numel() for p in net.parameters()) == params(arch, num_classes), arch.encode()
        counted = _counted_macs(net, arch.resolution)
        closed = macs(arch, num_classes)
        assert abs(counted / closed - 1) < 0.01, arch.encode()
        assert counted == closed  # exact in fact: conv + linear weights, no bias adds
    assert any(s.se for a in archs for s in a.stages)


def test_round_trip_string_and_json() -> None:
    space = MBV2Space()
    rng = random.Random(3)
    for arch in [MOBILENET_V2_1_0, *(MBV2Space(search_se=True).sample(rng) for _ in range(20))]:
        text = space.encode(arch)
        assert space.parse(text) == arch
        assert space.parse(arch.to_json()) == arch
        assert space.encode(space.parse(arch.to_json())) == text
        assert space.canonical(arch) == arch
        assert space.canonical_hash(space.parse(arch.to_json())) == space.canonical_hash(arch)
    # optional resolution prefix and SE flag; JSON with optional keys left out; whitespace
    se = space.parse("s16-[e4k5s2d2w24se]-l640")
    assert se == MBV2Arch(16, (Stage(4, 5, 2, 2, 24, True),), 640, 224)
    assert space.encode(se) == "r224-s16-[e4k5s2d2w24se]-l640"
    doc = {"stem": 16, "stages": [{"e": 4, "k": 5, "s": 2, "d": 2, "w": 24, "se": True}], "last": 640}
    assert space.parse("  " + json.dumps(doc) + "\n") == se
    doc["stages"][0]["se"] = False  # type: ignore[index]
    doc["resolution"] = 96
    assert space.parse(json.dumps(doc)) == MBV2Arch(16, (Stage(4, 5, 2, 2, 24),), 640, 96)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "arch"),
        ("r224-s32-l1280", "arch"),
        ("x224-s32-[e1k3s1d1w16]-l1280", "resolution"),
        ("r8-s32-[e1k3s1d1w16]-l1280", "resolution"),
        ("r224-s0-[e1k3s1d1w16]-l1280", "stem"),
        ("r224-sx-[e1k3s1d1w16]-l1280", "stem"),
        ("r224-s32-[e1k3s1d1w16]-l0", "last"),
        ("r224-s32-e1k3s1d1w16-l1280", "stages"),
        ("r224-s32-[e1k3s1d1w16][e6k4s2d2w24]-l1280", "stages[1].k"),
        ("r224-s32-[e1k3s1d1w16][e6k3s3d2w24]-l1280", "stages[1].s"),
        ("r224-s32-[e1k3s1d1w16][e6k3s2d0w24]-l1280", "stages[1].d"),
        ("r224-s32-[e1k3s1d1w16][e0k3s2d2w24]-l1280", "stages[1].e"),
        ("r224-s32-[e1k3s1d1w16][e6k3s2d2w0]-l1280", "stages[1].w"),
        ("r224-s32-[e1k3s1d1w16][e6k3s2d2]-l1280", "stages[1]"),
        ("r224-s32-[e1k3s1d1w16][e6k3s2d2w24xx]-l1280", "stages[1]"),
        ('{"stem": 32, "stages": [], "last": 1280}', "stages"),
        ('{"stem": 32, "last": 1280}', "stages"),
        ('{"stem": 32, "stages": [{"e": 1, "k": 3, "s": 1, "d": 1}], "last": 1280}', "stages[0].w"),
        ('{"stem": 32, "stages": [{"e": 1, "k": 3, "s": 1, "d": 1, "w": 16, "x": 1}], "last": 1280}', "stages[0].x"),
        ('{"stem": 32, "stages": [{"e": 1, "k": 3, "s": 1, "d": 1, "w": 16, "se": 1}], "last": 1280}', "stages[0].se"),
        ('{"stem": 32, "stages": [{"e": 1, "k": 3, "s": 1, "d": true, "w": 16}], "last": 1280}', "stages[0].d"),
        ('{"stem": "32", "stages": [{"e": 1, "k": 3, "s": 1, "d": 1, "w": 16}], "last": 1280}', "stem"),
        ('{"stem": 32, "stages": [{"e": 1, "k": 3, "s": 1, "d": 1, "w": 16}], "last": 1280, "r": 1}', "r"),
        (
            '{"stem": 32, "stages": [{"e": 1, "k": 3, "s": 1, "d": 1, "w": 16}], "last": 1280, "resolution": 9}',
            "resolution",
        ),
        ('{"stem": 32,', "json"),
        ("[1, 2]", "arch"),
        ("r224-s32-[e1k3s1d1w16]-l1280-x", "arch"),
    ],
)
def test_invalid_encodings_name_the_field(text: str, field: str) -> None:
    with pytest.raises(SpaceError) as err:
        MBV2Space().parse(text)
    assert err.value.field == field, str(err.value)


def test_non_string_and_too_many_stages_rejected() -> None:
    space = MBV2Space()
    with pytest.raises(SpaceError):
        space.parse(123)  # type: ignore[arg-type]
    with pytest.raises(SpaceError) as err:
        space.parse("s32-" + "[e1k3s1d1w16]" * 13 + "-l1280")
    assert err.value.field == "stages"
    assert len(CANONICAL) < space.max_arch_length


def test_sampling_respects_budget_and_range_and_is_reproducible() -> None:
    space = MBV2Space(flops_max_m=450.0)
    assert MBV2Space().with_budget(450.0).flops_max_m == 450.0
    assert space.with_budget(None).flops_max_m is None
    archs = [space.sample(random.Random(s)) for s in range(200)]
    assert archs[:10] == [space.sample(random.Random(s)) for s in range(10)]
    assert len({a.encode() for a in archs}) == len(archs)
    for arch in archs:
        assert macs(arch) <= 450e6
        assert arch.resolution == 224
        assert arch.stem_width in STEM_WIDTHS and arch.last_width in LAST_WIDTHS
        assert len(arch.stages) == len(SEARCH_STAGES)
        for st, r in zip(arch.stages, SEARCH_STAGES, strict=True):
            assert st.stride == r.stride and st.expansion in r.expansions and st.kernel in KERNELS
            assert st.depth in r.depths and st.width in r.widths and st.width % 8 == 0 and not st.se
    # without a budget some draws exceed 450M: the budget is binding
    free = [MBV2Space().sample(random.Random(s)) for s in range(200)]
    assert any(macs(a) > 450e6 for a in free)


def test_mutation_respects_budget_changes_one_field_and_is_reproducible() -> None:
    space = MBV2Space(flops_max_m=450.0)
    parent = space.sample(random.Random(0))
    for seed in range(100):
        child = space.mutate(parent, random.Random(seed))
        assert child == space.mutate(parent, random.Random(seed))
        assert child != parent and macs(child) <= 450e6
        diffs = int(child.stem_width != parent.stem_width) + int(child.last_width != parent.last_width)
        for a, b in zip(parent.stages, child.stages, strict=True):
            diffs += sum(
                getattr(a, f) != getattr(b, f) for f in ("expansion", "kernel", "stride", "depth", "width", "se")
            )
        assert diffs == 1
    # a chain of mutations stays within budget; MobileNetV2 itself (300M) mutates within 450M
    rng = random.Random(1)
    arch = MOBILENET_V2_1_0
    for _ in range(50):
        arch = space.mutate(arch, rng)
        assert macs(arch) <= 450e6
    with pytest.raises(SpaceError) as err:
        MBV2Space(flops_max_m=1.0).sample(random.Random(0))
    assert err.value.field == "budget"


def test_forward_and_cell_features() -> None:
    space = MBV2Space(resolution=64, search_se=True)
    arch = space.parse("r64-s16-[e1k3s1d1w16][e4k5s2d2w24se][e2k7s2d2w32][e6k3s1d1w32se]-l256")
    torch.manual_seed(0)
    net = space.build(arch, num_classes=10)
    torch.manual_seed(0)
    again = build_mbv2(arch.encode(), num_classes=10)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True))
    x = torch.randn(2, 3, 64, 64)
    logits = net(x)
    assert logits.shape == (2, 10)
    assert isinstance(net.classifier, torch.nn.Linear)
    feats = net.extract_cell_features(x)
    assert [tuple(f.shape) for f in feats] == [
        (2, 16, 32, 32),  # stem
        (2, 16, 32, 32),
        (2, 24, 16, 16),
        (2, 32, 8, 8),
        (2, 32, 8, 8),
        (2, 256, 8, 8),  # head conv
    ]
    logits.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
