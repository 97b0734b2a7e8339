"""Generic DAG space (validation, canonical hashing, the executor), hook-based features, timm space, user modules."""

from __future__ import annotations

import copy
import json
import math
import random
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import zcscore
from zcscore.engine import Engine, seed_everything
from zcscore.proxies.cost import count_flops
from zcscore.proxies.features import feature_modules, hooked_features
from zcscore.spaces.base import SpaceError
from zcscore.spaces.dag import EXAMPLE, MAX_NODES, DagSpace, parse_dag
from zcscore.spaces.dag_net import DagNet

SPACE = DagSpace()


def conv(id_, src, out, k=3, **kw):
    return {"id": id_, "op": "conv", "in": [src], "out": out, "k": k, **kw}


def one(id_, op, src, **kw):
    return {"id": id_, "op": op, "in": [src], **kw}


def residual_dag(width=8, classes=10):
    """Stem, one residual block, a strided block with a concat, gap, linear."""
    return {
        "input": [3, 32, 32],
        "nodes": [
            conv("stem", "input", width),
            one("stem_bn", "bn", "stem"),
            one("stem_r", "relu", "stem_bn"),
            conv("c1", "stem_r", width),
            one("b1", "bn", "c1"),
            one("r1", "relu", "b1"),
            conv("c2", "r1", width),
            one("b2", "bn", "c2"),
            {"id": "a1", "op": "add", "in": ["stem_r", "b2"]},
            one("ra", "relu", "a1"),
            conv("down", "ra", width, k=3, stride=2),
            one("pool", "maxpool", "ra", k=3, stride=2),
            {"id": "cat", "op": "concat", "in": ["down", "pool"]},
            one("rc", "relu", "cat"),
            one("g", "gap", "rc"),
            {"id": "fc", "op": "linear", "in": ["g"], "out": classes},
        ],
        "output": "fc",
    }


def text(obj):
    return json.dumps(obj)


def edited(edit):
    obj = copy.deepcopy(residual_dag())
    edit(obj)
    return text(obj)


def _set(path_value):
    def edit(obj):
        index, key, value = path_value
        obj["nodes"][index][key] = value

    return edit


BAD = [
    ("{not json", "arch", "valid JSON"),
    ("[1, 2]", "arch", "JSON object"),
    (edited(lambda o: o.update(extra=1)), "extra", "unknown key"),
    (edited(lambda o: o.update(input=[3, 32])), "input", "[C, H, W]"),
    (edited(lambda o: o.update(input=[3, 0, 32])), "input[1]", "1..1024"),
    (edited(lambda o: o.update(nodes=[])), "nodes", "non-empty"),
    (edited(_set((1, "op", "batchnorm"))), "nodes[1].op", "unknown op"),
    (edited(_set((0, "kernel", 3))), "nodes[0].kernel", "unknown key"),
    (edited(_set((1, "k", 3))), "nodes[1].k", "unknown key"),  # bn has no k
    (edited(lambda o: o["nodes"][0].pop("out")), "nodes[0].out", "needs 'out'"),
    (edited(_set((3, "out", 5000))), "nodes[3].out", "1..4096"),
    (edited(_set((3, "out", 8.0))), "nodes[3].out", "integer"),
    (edited(_set((3, "out", True))), "nodes[3].out", "integer"),
    (edited(_set((3, "bias", 1))), "nodes[3].bias", "true or false"),
    (edited(_set((4, "in", ["nope"]))), "nodes[4].in[0]", "unknown input"),
    (edited(_set((4, "in", ["r1"]))), "nodes[4].in[0]", "topological"),  # r1 comes later: a cycle
    (edited(_set((4, "in", ["b1"]))), "nodes[4].in[0]", "cycles"),  # itself
    (edited(_set((4, "in", "c1"))), "nodes[4].in", "list"),
    (edited(_set((4, "in", ["c1", "c1"]))), "nodes[4].in", "exactly 1 input"),
    (edited(_set((8, "in", ["b2"]))), "nodes[8].in", "2..64 inputs"),
    (edited(_set((5, "id", "stem"))), "nodes[5].id", "already used"),
    (edited(_set((5, "id", "input"))), "nodes[5].id", "other than"),
    (edited(_set((5, "id", "a.b"))), "nodes[5].id", "matching"),
    (edited(_set((6, "out", 16))), "nodes[8].in[1]", "add of different shapes"),
    (edited(_set((10, "stride", 1))), "nodes[12].in[1]", "concat"),
    (edited(_set((3, "groups", 3))), "nodes[3].groups", "does not divide"),
    (edited(_set((11, "padding", 2))), "nodes[11].padding", "at most k//2"),
    (edited(_set((15, "in", ["rc"]))), "nodes[15].in[0]", "add a gap or flatten"),  # linear on 4-D
    (
        edited(lambda o: o["nodes"].insert(15, conv("late", "g", 8))),
        "nodes[15].in[0]",
        "needs a [C, H, W] input",
    ),  # conv on a vector
    (
        edited(lambda o: o.update(input=[3, 4, 4], nodes=[conv("c", "input", 8, k=15, padding=0)], output="c")),
        "nodes[0].k",
        "larger than",
    ),
    (
        edited(
            lambda o: o.update(
                input=[3, 512, 512],
                nodes=[one("f", "flatten", "input"), {"id": "fc", "op": "linear", "in": ["f"], "out": 4096}],
                output="fc",
            )
        ),
        "nodes[1]",
        "parameters",
    ),
    (
        edited(lambda o: o.update(nodes=[one(f"r{i}", "relu", "input") for i in range(MAX_NODES + 1)], output="r0")),
        "nodes",
        "at most 200",
    ),
    (edited(lambda o: o.update(input=[64, 1024, 1024])), "input", "elements"),
    (
        edited(lambda o: o.update(input=[3, 128, 128], nodes=[conv("c", "input", 4096)], output="c")),
        "nodes[0]",
        "elements per image",
    ),
    (
        edited(
            lambda o: o.update(
                input=[3, 1024, 1024], nodes=[one(f"r{i}", "relu", "input") for i in range(50)], output="r0"
            )
        ),
        "nodes[42]",
        "elements per image",
    ),
    (
        edited(lambda o: o.update(input=[3, 512, 512], nodes=[one("f", "flatten", "input")], output="f")),
        "output",
        "wide",
    ),
    (edited(lambda o: o.update(output="nope")), "output", "id of a node"),
    (edited(lambda o: o.update(output="input")), "output", "id of a node"),
]


@pytest.mark.parametrize(("arch", "field", "needle"), BAD, ids=[f"{i}-{f}" for i, (_, f, _) in enumerate(BAD)])
def test_invalid_dags_name_the_field(arch, field, needle):
    with pytest.raises(SpaceError) as err:
        SPACE.parse(arch)
    assert err.value.field == field, str(err.value)
    assert needle in str(err.value)


def test_non_string_rejected():
    with pytest.raises(SpaceError) as err:
        SPACE.parse({"input": [3, 32, 32]})  # type: ignore[arg-type]
    assert err.value.field == "arch"


def test_round_trip_defaults_and_output_default():
    arch = SPACE.parse(text(residual_dag()))
    assert SPACE.parse(SPACE.encode(arch)) == arch
    enc = json.loads(SPACE.encode(arch))
    assert enc["nodes"][0] == {
        "id": "stem",
        "op": "conv",
        "in": ["input"],
        "out": 8,
        "k": 3,
        "stride": 1,
        "padding": 1,
        "groups": 1,
        "bias": False,
    }
    assert enc["nodes"][-1]["bias"] is True
    obj = residual_dag()
    del obj["output"]
    assert parse_dag(text(obj)).output == "fc"
    assert SPACE.input_shape_for(arch) == (3, 32, 32) and SPACE.input_shape == (3, 32, 32)
    assert SPACE.flops_m(arch) is None and SPACE.size is None
    assert SPACE.parse(SPACE.example).output == EXAMPLE["output"]


def test_canonical_renames_prunes_and_orders():
    base = residual_dag()
    variant = copy.deepcopy(base)
    rename = {n["id"]: f"x_{i}" for i, n in enumerate(variant["nodes"])}
    for n in variant["nodes"]:
        n["id"] = rename[n["id"]]
        n["in"] = [rename.get(r, r) for r in n["in"]]
    variant["output"] = rename["fc"]
    nodes = variant["nodes"]
    nodes[8]["in"].reverse()  # add inputs are unordered
    nodes[10], nodes[11] = nodes[11], nodes[10]  # independent branches listed the other way round
    nodes[0]["stride"] = 1  # an explicit default
    nodes.insert(3, conv("dead", "x_2", 32))  # a dead branch
    nodes.insert(4, one("dead_r", "relu", "dead"))
    a, b = SPACE.parse(text(base)), SPACE.parse(text(variant))
    assert a != b
    ca, cb = SPACE.canonical(a), SPACE.canonical(b)
    assert ca == cb
    assert SPACE.canonical_hash(a) == SPACE.canonical_hash(b)
    assert [n.id for n in ca.nodes] == [f"n{i}" for i in range(16)] and ca.output == "n15"
    assert SPACE.canonical(ca) == ca and SPACE.parse(SPACE.encode(ca)) == ca
    # different functions hash apart: a wider conv, or concat inputs swapped (channel order matters)
    wider = copy.deepcopy(base)
    wider["nodes"][3]["out"] = 8
    wider["nodes"][10]["out"] = 16
    swapped = copy.deepcopy(base)
    swapped["nodes"][12]["in"].reverse()
    hashes = {SPACE.canonical_hash(SPACE.parse(text(o))) for o in (base, wider, swapped)}
    assert len(hashes) == 3


def test_build_forward_params_and_head():
    arch = SPACE.canonical(SPACE.parse(text(residual_dag(classes=7))))
    seed_everything(3)
    net = SPACE.build(arch, num_classes=100)  # the DAG's own linear width wins
    assert isinstance(net, DagNet)
    seed_everything(3)
    again = SPACE.build(arch)  # same seed, same weights (init follows node order only)
    assert all(torch.equal(x, y) for x, y in zip(net.state_dict().values(), again.state_dict().values()))
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params == round(SPACE.params_m(arch) * 1e6)
    assert net.classifier is net.layers[arch.output]
    feats = net.extract_cell_features(torch.randn(2, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in feats] == [(8, 32, 32)] * 4 + [(16, 16, 16)] * 2
    # no linear output: a head of num_classes; dead nodes are not built; ids clashing with ModuleDict methods
    obj = {
        "input": [3, 16, 16],
        "nodes": [conv("pop", "input", 4), one("train", "relu", "pop"), conv("dead", "train", 64)],
        "output": "train",
    }
    headed = SPACE.build(SPACE.parse(text(obj)), num_classes=5)
    assert headed(torch.randn(2, 3, 16, 16)).shape == (2, 5)
    assert isinstance(headed.classifier, nn.Linear) and headed.classifier.out_features == 5
    assert sum(p.numel() for p in headed.parameters()) == round(SPACE.params_m(SPACE.parse(text(obj)), 5) * 1e6)
    assert "dead" not in headed.module_keys and set(headed.module_keys) == {"pop", "train"}
    assert count_flops(headed, (1, 3, 16, 16)) == pytest.approx((27 * 4 * 256 + 4 * 5 + 5) / 1e6)


def test_sample_and_mutate_stay_valid():
    rng = random.Random(5)
    for _ in range(20):
        arch = SPACE.sample(rng)
        assert SPACE.parse(SPACE.encode(arch)) == arch
        child = SPACE.mutate(arch, rng)
        assert SPACE.parse(SPACE.encode(child)) == child
        diff = [(a, b) for a, b in zip(arch.nodes, child.nodes) if a != b]
        assert len(diff) == 1 and diff[0][0].op == "conv"
        changed = {k for (k, v), (_, w) in zip(diff[0][0].params, diff[0][1].params) if v != w}
        assert changed in ({"out"}, {"k", "padding"}, {"k"})
    with pytest.raises(SpaceError):
        SPACE.mutate(parse_dag(text({"input": [3, 8, 8], "nodes": [one("g", "gap", "input")]})), rng)


def test_strided_pointwise_conv_runs_in_nchw_instead_of_crashing():
    """A 1x1 stride-2 conv under InTrain (64x64) with channels-last asked for, in a child process: torch 2.13's
    channels-last weight gradient of that conv segfaults, so the engine runs the network in NCHW and says so."""
    script = textwrap.dedent(
        """
        import json, math
        from zcscore.engine import Engine, ScoreConfig
        from zcscore.spaces.dag import DagSpace
        sp = DagSpace()
        nodes = [
            {"id": "c0", "op": "conv", "in": ["input"], "out": 8, "k": 3},
            {"id": "r0", "op": "relu", "in": ["c0"]},
            {"id": "c1", "op": "conv", "in": ["r0"], "out": 16, "k": 1, "stride": 2},
            {"id": "g", "op": "gap", "in": ["c1"]},
        ]
        arch = json.dumps({"input": [3, 32, 32], "nodes": nodes})
        (rec,) = Engine(["intrain"], ScoreConfig(channels_last=True)).score_archs([arch], space=sp)
        assert rec.error is None and math.isfinite(rec.score), rec
        assert rec.provenance["channels_last"] is False
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def _finite(records):
    for rec in records:
        assert rec.error is None, (rec.proxy, rec.error)
        assert math.isfinite(rec.score), (rec.proxy, rec.score)


def test_engine_scores_dags():
    archs = [text(residual_dag()), text(EXAMPLE), SPACE.encode(SPACE.sample(random.Random(1)))]
    records = Engine(["params", "flops", "az_nas", "intrain"]).score_archs(archs, space=SPACE)
    assert len(records) == 12
    _finite(records)
    for arch_text, rec in zip(archs, records[::4]):
        assert rec.proxy == "params"
        net = SPACE.build(SPACE.canonical(SPACE.parse(arch_text)))
        assert rec.score == pytest.approx(sum(p.numel() for p in net.parameters()) / 1e6)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        # the usual ResNet shortcut, a stride-2 1x1 conv (the engine runs this network in NCHW on CPU)
        self.short = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.short(x))


class TinyResNet(nn.Module):
    def __init__(self, width=8, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.block1 = Block(width, width, 1)
        self.block2 = Block(width, 2 * width, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.block2(self.block1(self.stem(x))))))


def test_user_module_scores():
    torch.manual_seed(0)
    model = TinyResNet()
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    records = Engine(["params", "flops", "az_nas", "intrain"]).score_module(model)
    assert [r.proxy for r in records] == ["params", "flops", "az_expressivity", "az_progressivity",
                                          "az_trainability", "az_complexity", "intrain"]  # fmt: skip
    _finite(records)
    assert records[0].score == pytest.approx(n_params)
    again = zcscore.score_module(model, ["params", "az_expressivity", "intrain"])
    _finite(again)
    assert [r.proxy for r in again] == ["params", "az_expressivity", "intrain"]
    assert again[1].score == records[2].score and again[2].score == records[-1].score


def test_feature_modules_and_hooks():
    torch.manual_seed(0)
    net = TinyResNet()
    x = torch.randn(2, 3, 16, 16)
    default = feature_modules(net, None)
    assert default == [net.stem, net.block1, net.block2, net.pool, net.flatten, net.fc]
    feats = hooked_features(net, x, default)
    assert feats[0] is x and len(feats) == 7
    assert torch.allclose(feats[-1], net(x))
    mods = feature_modules(net, ["block1", "block2.conv2", "stem.2", "block1"])
    assert mods[0] is net.block1 and mods[1] is net.block2.conv2
    feats = hooked_features(net, x, mods)  # call order, not list order; a repeated module is hooked once
    assert [tuple(f.shape[1:]) for f in feats] == [(3, 16, 16), (8, 16, 16), (8, 16, 16), (16, 8, 8)]
    assert not net.block1._forward_hooks  # hooks removed
    with pytest.raises(KeyError, match=r"no module named 'block3'.*block1"):
        feature_modules(net, ["block3"])
    with pytest.raises(KeyError, match=r"block2\.conv9"):
        feature_modules(net, ["block2.conv9"])
    # a DagNet: the default is every node (the ModuleDict stands for its children), names override
    dag = SPACE.build(SPACE.parse(text(residual_dag())))
    assert len(feature_modules(dag, None)) == 16
    (_, r1) = hooked_features(dag, x, feature_modules(dag, ["layers.r1"]))
    assert torch.equal(r1, dag.run_nodes(x, keep=True)["r1"])


def test_timm_missing_is_a_space_error(monkeypatch):
    from zcscore.spaces import timm_space

    timm_space.timm_models.cache_clear()
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm -> ImportError
    try:
        space = timm_space.TimmSpace()
        with pytest.raises(SpaceError) as err:
            space.parse("resnet18")
        assert err.value.field == "arch" and "pip install 'zcscore[timm]'" in str(err.value)
        # torch-free parts need no timm
        rng = random.Random(0)
        arch = space.sample(rng)
        assert space.encode(arch).split("@")[0] in timm_space.SMALL_MODELS
        assert space.mutate(arch, rng) != arch
        assert space.input_shape_for(timm_space.TimmArch("resnet18", 160)) == (3, 160, 160)
        with pytest.raises(SpaceError) as err:
            space.parse("resnet18@9999")
        assert err.value.field == "resolution"
    finally:
        timm_space.timm_models.cache_clear()


def test_timm_space():
    pytest.importorskip(
        "timm",
        reason="timm needs torchvision, and no torchvision wheel imports beside torch 2.13.0+cpu (CI's torch); "
        "runs where `pip install timm` gives a matching torch/torchvision pair",
    )
    from zcscore.spaces.timm_space import TimmSpace

    space = TimmSpace()
    arch = space.parse("resnet18@64")
    assert space.encode(arch) == "resnet18@64" and space.input_shape_for(arch) == (3, 64, 64)
    assert space.canonical_hash(space.parse("resnet18")) == space.canonical_hash(space.parse("resnet18@224"))
    with pytest.raises(SpaceError) as err:
        space.parse("resnet181")
    assert err.value.field == "arch" and "resnet18" in str(err.value)
    net = space.build(space.parse("resnet10t"), num_classes=3)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    # scored through the Python API, by name and as a module, with the hook-based feature defaults
    by_name = {r.proxy: r for r in zcscore.score(["resnet10t@32"], ["params", "az_nas", "intrain"], space="timm")}
    assert set(by_name) == {"params", "az_nas", "intrain"}
    _finite(by_name.values())
    import timm

    model = timm.create_model("resnet10t", num_classes=10)
    assert by_name["params"].score == pytest.approx(sum(p.numel() for p in model.parameters()) / 1e6)
    as_module = zcscore.score_module(model, ["params", "zico"])
    assert as_module[0].score == by_name["params"].score
    _finite(as_module)
