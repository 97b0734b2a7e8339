"""NB201 space: parsing, validation, isomorphism hashing, the network and its costs."""

from __future__ import annotations

import csv
import itertools

import pytest
import torch

from zcscore.proxies.cost import count_flops, count_params
from zcscore.spaces.nb201 import (
    EXAMPLE_ARCH,
    OPS,
    ArchError,
    NB201Arch,
    arch_from_index,
    index_of,
    nats_flops_m,
)
from zcscore.spaces.nb201_net import build_nb201

ALL = [NB201Arch(ops) for ops in itertools.product(OPS, repeat=6)]


def test_round_trip_and_index(data_dir):
    assert NB201Arch.parse(EXAMPLE_ARCH).to_str() == EXAMPLE_ARCH
    arch = arch_from_index(13714, data_dir)
    assert index_of(arch, data_dir) == 13714
    with open(data_dir / "nb201.csv") as fh:
        strings = {row["arch"] for row in csv.DictReader(fh)}
    assert strings == {a.to_str() for a in ALL}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "3 node groups"),
        ("|conv_5x5~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "conv_5x5~0"),
        ("|nor_conv_3x3~1|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "node 0"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "2 input edge"),
        (
            "|nor_conv_3x3|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
            "nor_conv_3x3",
        ),
        ("nor_conv_3x3~0+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "'|'"),
    ],
)
def test_invalid_strings_name_the_bad_token(text, needle):
    with pytest.raises(ArchError) as err:
        NB201Arch.parse(text)
    assert needle in str(err.value)


def test_non_string_rejected():
    with pytest.raises(ArchError):
        NB201Arch.parse(123)  # type: ignore[arg-type]


def test_isomorphism_classes():
    assert len({a.canonical_hash() for a in ALL}) == 14125
    a = NB201Arch.parse("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|")
    b = NB201Arch.parse("|skip_connect~0|+|nor_conv_3x3~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|")
    assert a.canonical_hash() == b.canonical_hash()
    assert a.canonical() == b.canonical()
    # with an edge between the two intermediate nodes they cannot be renamed
    c = NB201Arch.parse(
        "|nor_conv_3x3~0|+|skip_connect~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|"
    )
    d = NB201Arch.parse(
        "|skip_connect~0|+|nor_conv_3x3~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    )
    assert c.canonical_hash() != d.canonical_hash()


def test_isomorphs_compute_the_same_function():
    a = NB201Arch.parse("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|")
    torch.manual_seed(0)
    net_a = build_nb201(a)
    net_b = build_nb201(a.swapped())
    # copy weights edge by edge under the node renaming 1 <-> 2
    perm = {0: 1, 1: 0, 2: 2, 3: 3, 4: 5, 5: 4}
    sd_b = net_b.state_dict()
    for key, value in net_a.state_dict().items():
        parts = key.split(".")
        if parts[0] == "cells" and parts[2] == "layers":
            parts[3] = str(perm[int(parts[3])])
        sd_b[".".join(parts)] = value
    net_b.load_state_dict(sd_b)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(net_a(x)[1], net_b(x)[1])


def test_zero_output_detection():
    zeros = [a for a in ALL if a.output_is_zero()]
    assert len(zeros) == 341  # the NB201 archs with -inf/NaN sentinels in NASWOT/Zen tables
    assert NB201Arch.parse("|none~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|skip_connect~1|none~2|").output_is_zero()


def test_network_params_and_flops_of_best_arch(data_dir):
    arch = arch_from_index(13714, data_dir)
    net = build_nb201(arch)
    assert sum(p.numel() for p in net.parameters()) == 1_073_466
    assert count_params(net) == pytest.approx(1.073466)
    assert count_flops(net) == pytest.approx(153.27297, abs=1e-5)  # NATS API: 153.27 MFLOPs
    assert nats_flops_m(NB201Arch.parse(arch)) == pytest.approx(count_flops(net), abs=1e-9)


@pytest.mark.parametrize("num_classes", [10, 100, 120])
def test_flops_formula_matches_hook_count(num_classes):
    for arch in ALL[::1553]:
        assert nats_flops_m(arch, num_classes) == pytest.approx(count_flops(build_nb201(arch, num_classes)), abs=1e-9)


def test_flops_match_official_reference(data_dir):
    with open(data_dir / "nb201_reference_official.csv") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        arch = NB201Arch.parse(row["arch"])
        assert nats_flops_m(arch) == pytest.approx(float(row["flops_m_nats"]), abs=1e-5)
        assert count_params(build_nb201(arch)) == pytest.approx(float(row["params_m"]), abs=1e-6)


def test_none_op_keeps_gradients_as_zeros():
    net = build_nb201("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    _, logits = net(torch.randn(4, 3, 32, 32))
    logits.sum().backward()
    grads = [m.weight.grad for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(g is not None for g in grads)


@pytest.mark.parametrize("num_classes", [10, 100, 120])
def test_head_sizes(num_classes):
    net = build_nb201(EXAMPLE_ARCH, num_classes)
    pooled, logits = net(torch.randn(2, 3, 32, 32))
    assert pooled.shape == (2, 64) and logits.shape == (2, num_classes)
    assert len(net.extract_cell_features(torch.randn(2, 3, 32, 32))) == 18
