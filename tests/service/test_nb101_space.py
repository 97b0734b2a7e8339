"""NAS-Bench-101 space: parsing/validation, pruning, canonical form and graph hash, params, network, sample/mutate."""

from __future__ import annotations

import csv
import itertools
import json
import random
from functools import cache
from pathlib import Path

import pytest

from zcscore.spaces.base import SpaceError
from zcscore.spaces.nb101 import (
    EXAMPLE_ARCH,
    MAX_EDGES,
    NB101Space,
    NB101Spec,
    edge_bits,
    graph_hash,
    nb101_params,
    vertex_channels,
)

SAMPLE_CSV = Path("/work/shared/data/nb101_sample.csv")
needs_sample = pytest.mark.skipif(not SAMPLE_CSV.exists(), reason="nb101_sample.csv not available")

SPACE = NB101Space()
CONV3 = "conv3x3-bn-relu"
POOL = "maxpool3x3"


@cache
def sample_rows() -> tuple[tuple[str, float], ...]:
    with SAMPLE_CSV.open(newline="") as fh:
        return tuple((r["arch"], float(r["params"])) for r in csv.DictReader(fh))


def arch(matrix: list[list[int]], ops: list[str]) -> str:
    return json.dumps({"matrix": matrix, "ops": ops})


def relabel(spec: NB101Spec, interior: tuple[int, ...]) -> NB101Spec | None:
    """The spec with interior vertices reordered (new vertex k = old ``order[k]``), or None if not a DAG order."""
    n = spec.num_vertices
    order = (0, *interior, n - 1)
    pos = {v: k for k, v in enumerate(order)}
    if any(spec.matrix[a][b] and pos[a] > pos[b] for a in range(n) for b in range(n)):
        return None
    return NB101Spec(tuple(tuple(spec.matrix[a][b] for b in order) for a in order), tuple(spec.ops[a] for a in order))


# --- parameters -----------------------------------------------------------------------------------------


def test_example_matches_release_row() -> None:
    """The release row 00005c14...: same module hash and 8,555,530 trainable parameters."""
    spec = SPACE.parse(EXAMPLE_ARCH)
    assert graph_hash(spec) == "00005c142e6f48ac74fdcf73e3439874"
    assert nb101_params(spec) == 8_555_530


@needs_sample
def test_params_match_naslib_for_all_500() -> None:
    """Analytic count == NASLib's ``params`` (M, 6 decimals) for every row: exact, |diff| < 1e-3 params."""
    rows = sample_rows()
    assert len(rows) == 500
    worst = max(abs(nb101_params(SPACE.parse(text)) - p * 1e6) for text, p in rows)
    assert worst < 1e-3  # float rounding of csv*1e6 only; the integer counts are identical


@needs_sample
def test_built_network_counts_match_analytic() -> None:
    """Trainable parameters of the built module (meta device, no init cost) == ``nb101_params`` on 24 archs."""
    torch = pytest.importorskip("torch")
    by_size: dict[int, list[NB101Spec]] = {}
    for text, _ in sample_rows():
        spec = SPACE.parse(text)
        by_size.setdefault(spec.num_vertices, []).append(spec)
    chosen = [spec for specs in by_size.values() for spec in specs[:4]][:24]  # every size 2..7 represented
    assert {s.num_vertices for s in chosen} == {2, 3, 4, 5, 6, 7}
    for spec in [*chosen, SPACE.parse(EXAMPLE_ARCH)]:
        for num_classes in (10, 100):
            with torch.device("meta"):
                net = SPACE.build(spec, num_classes)
            count = sum(p.numel() for p in net.parameters() if p.requires_grad)
            assert count == nb101_params(spec, num_classes)


def test_vertex_channels_official_split() -> None:
    """Output channels split evenly over output-feeding vertices, remainder to the first; max back-propagated."""
    # 0->1, 1->2, 1->3, 1->4, 2->4, 3->4: vertices 1, 2, 3 feed the output (128 = 43 + 43 + 42)
    m = ((0, 1, 0, 0, 0), (0, 0, 1, 1, 1), (0, 0, 0, 0, 1), (0, 0, 0, 0, 1), (0, 0, 0, 0, 0))
    assert vertex_channels(128, 128, m) == (128, 43, 43, 42, 128)
    # 0->1->2->out, 0->3->out: vertex 1 does not feed the output and takes the max of its successor
    m2 = ((0, 1, 0, 1, 0), (0, 0, 1, 0, 0), (0, 0, 0, 0, 1), (0, 0, 0, 0, 1), (0, 0, 0, 0, 0))
    assert vertex_channels(128, 256, m2) == (128, 128, 128, 128, 256)
    assert vertex_channels(64, 128, ((0, 1), (0, 0))) == (64, 128)


# --- parsing, validation, pruning -----------------------------------------------------------------------


def test_parse_encode_roundtrip() -> None:
    spec = SPACE.parse(EXAMPLE_ARCH)
    assert isinstance(spec, NB101Spec)
    text = SPACE.encode(spec)
    assert " " not in text and text.index('"matrix"') < text.index('"ops"')
    assert SPACE.parse(text) == spec
    assert SPACE.parse(json.dumps(json.loads(EXAMPLE_ARCH), indent=2)) == spec


def test_pruning_drops_dead_vertices() -> None:
    """Vertex 2 has no way out and vertex 3 no way in: both are pruned, as NB101 ``ModelSpec`` does."""
    text = arch(
        [
            [0, 1, 1, 0, 0],
            [0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0],
            [0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0],
        ],
        ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu", "output"],
    )
    spec = SPACE.parse(text)
    assert spec.matrix == ((0, 1, 0), (0, 0, 1), (0, 0, 0))
    assert spec.ops == ("input", "conv3x3-bn-relu", "output")
    assert SPACE.encode(spec) == '{"matrix":[[0,1,0],[0,0,1],[0,0,0]],"ops":["input","conv3x3-bn-relu","output"]}'


def test_edge_limit_applies_after_pruning() -> None:
    """12 raw edges, 9 after pruning vertex 5: valid (NB101 checks the pruned spec, as the sample needs)."""
    text = arch(
        [
            [0, 1, 1, 1, 1, 0, 1],
            [0, 0, 0, 0, 0, 1, 1],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 1, 1, 0],
            [0, 0, 0, 0, 0, 1, 1],
            [0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        ["input", "maxpool3x3", "maxpool3x3", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv3x3-bn-relu", "output"],
    )
    spec = SPACE.parse(text)
    assert spec.num_vertices == 6 and spec.num_edges == MAX_EDGES


def test_input_straight_to_output_is_valid() -> None:
    spec = SPACE.parse(arch([[0, 1, 1], [0, 0, 0], [0, 0, 0]], ["input", "maxpool3x3", "output"]))
    assert spec == NB101Spec(((0, 1), (0, 0)), ("input", "output"))
    assert SPACE.parse(arch([[0, 1], [0, 0]], ["input", "output"])) == spec


FULL7 = [[1 if j > i else 0 for j in range(7)] for i in range(7)]  # 21 edges
OPS7 = ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("not json", "arch"),
        ("[1, 2]", "arch"),
        ('{"ops": ["input", "output"]}', "matrix"),
        ('{"matrix": [[0, 1], [0, 0]]}', "ops"),
        ('{"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"], "hash": "x"}', "hash"),
        (arch([], []), "matrix"),
        (arch([[0]], ["input"]), "matrix"),
        (arch([[0] * 8 for _ in range(8)], ["input"] + ["maxpool3x3"] * 6 + ["output"]), "matrix"),
        ('{"matrix": [[0, 1], [0]], "ops": ["input", "output"]}', "matrix[1]"),
        ('{"matrix": "01", "ops": ["input", "output"]}', "matrix"),
        (arch([[0, 2], [0, 0]], ["input", "output"]), "matrix[0][1]"),
        ('{"matrix": [[0, true], [0, 0]], "ops": ["input", "output"]}', "matrix[0][1]"),
        ('{"matrix": [[0, 1.0], [0, 0]], "ops": ["input", "output"]}', "matrix[0][1]"),
        (arch([[0, 1, 1], [0, 0, 1], [0, 1, 0]], ["input", "maxpool3x3", "output"]), "matrix[2][1]"),
        (arch([[1, 1], [0, 0]], ["input", "output"]), "matrix[0][0]"),
        (arch([[0, 1], [0, 0]], ["input", "maxpool3x3", "output"]), "ops"),
        ('{"matrix": [[0, 1], [0, 0]], "ops": "input output"}', "ops"),
        (arch([[0, 1], [0, 0]], ["conv3x3-bn-relu", "output"]), "ops[0]"),
        (arch([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "maxpool3x3", "input"]), "ops[2]"),
        (arch(FULL7, [*OPS7[:3], "conv5x5", *OPS7[4:]]), "ops[3]"),
        (arch([[0, 1, 0], [0, 0, 0], [0, 0, 0]], ["input", "maxpool3x3", "output"]), "matrix"),  # no path
        (arch(FULL7, OPS7), "matrix"),  # 21 edges after pruning
    ],
)
def test_invalid_specs_name_the_field(text: str, field: str) -> None:
    with pytest.raises(SpaceError) as info:
        SPACE.parse(text)
    assert info.value.field == field, str(info.value)


def test_parse_rejects_non_string() -> None:
    with pytest.raises(SpaceError):
        SPACE.parse(None)  # type: ignore[arg-type]


# --- isomorphism --------------------------------------------------------------------------------------------


def test_isomorphs_share_canonical_form_and_hash() -> None:
    """Every DAG-preserving relabelling of the interior gives the same canonical encoding and graph hash."""
    spec = SPACE.parse(EXAMPLE_ARCH)
    key, ghash = SPACE.encode(SPACE.canonical(spec)), graph_hash(spec)
    seen = 0
    for interior in itertools.permutations(range(1, 6)):
        iso = relabel(spec, interior)
        if iso is None:
            continue
        seen += 1
        assert SPACE.encode(SPACE.canonical(iso)) == key
        assert SPACE.canonical_hash(iso) == SPACE.canonical_hash(spec)
        assert graph_hash(iso) == ghash
    assert seen > 1


def test_isomorphs_of_random_cells() -> None:
    rng = random.Random(3)
    for _ in range(40):
        spec = SPACE.sample(rng)
        n = spec.num_vertices
        perms = [p for p in itertools.permutations(range(1, n - 1)) if relabel(spec, p) is not None]
        for p in rng.sample(perms, min(5, len(perms))):
            iso = relabel(spec, p)
            assert iso is not None
            assert SPACE.canonical(iso) == SPACE.canonical(spec)
            assert graph_hash(iso) == graph_hash(spec)


def test_non_isomorphic_cells_differ() -> None:
    base = SPACE.parse(EXAMPLE_ARCH)
    other_op = SPACE.parse(EXAMPLE_ARCH.replace('"maxpool3x3"', '"conv1x1-bn-relu"'))
    matrix = [list(r) for r in base.matrix]
    matrix[0][5] = 0  # one input edge fewer
    other_edge = SPACE.parse(arch(matrix, list(base.ops)))
    for other in (other_op, other_edge):
        assert SPACE.canonical(other) != SPACE.canonical(base)
        assert SPACE.canonical_hash(other) != SPACE.canonical_hash(base)
        assert graph_hash(other) != graph_hash(base)
    # same op multiset and degree sequence, different wiring: a chain conv3 -> pool vs pool -> conv3
    a = SPACE.parse(arch([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], ["input", CONV3, POOL, "output"]))
    b = SPACE.parse(arch([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], ["input", POOL, CONV3, "output"]))
    assert SPACE.canonical(a) != SPACE.canonical(b) and graph_hash(a) != graph_hash(b)


def test_pruned_and_unpruned_forms_are_one_arch() -> None:
    raw = arch([[0, 1, 1], [0, 0, 0], [0, 0, 0]], ["input", "maxpool3x3", "output"])
    spec = SPACE.parse(raw)
    unpruned = NB101Spec(((0, 1, 1), (0, 0, 0), (0, 0, 0)), ("input", "maxpool3x3", "output"))
    assert SPACE.canonical(unpruned) == SPACE.canonical(spec)
    assert graph_hash(unpruned) == graph_hash(spec)
    assert nb101_params(unpruned) == nb101_params(spec)


@needs_sample
def test_canonical_and_graph_hash_partition_the_sample_alike() -> None:
    """On the 500 sample rows (292 classes): equal canonical form <=> equal NB101 hash."""
    classes: dict[str, set[str]] = {}
    params: dict[str, set[float]] = {}
    for text, p in sample_rows():
        spec = SPACE.parse(text)
        key = SPACE.encode(SPACE.canonical(spec))
        classes.setdefault(key, set()).add(graph_hash(spec))
        params.setdefault(key, set()).add(p)
    assert all(len(h) == 1 for h in classes.values())
    assert len({next(iter(h)) for h in classes.values()}) == len(classes) == 292
    # The channel remainder goes to the lowest-numbered vertices, so in 3 classes NASLib's raw labellings of
    # one cell have different parameter counts (each matches our count of that labelling, tested above).
    assert sum(len(p) > 1 for p in params.values()) == 3


# Release rows: (query matrix, query ops, stored module_adjacency, stored module_operations, hash, params).
INCEPTION_QUERY = (
    [[0, 1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0, 0],
     [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
    ["input", "conv1x1-bn-relu", CONV3, CONV3, CONV3, POOL, "output"],
)  # fmt: skip
INCEPTION_STORED = (
    [[0, 1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
    ["input", CONV3, "conv1x1-bn-relu", POOL, CONV3, CONV3, "output"],
)  # fmt: skip
ROW_3468426 = (
    [[0, 1, 0, 1, 0, 0, 0], [0, 0, 1, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0, 0],
     [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
    ["input", POOL, CONV3, POOL, "conv1x1-bn-relu", POOL, "output"],
)  # fmt: skip


def test_canonical_is_the_release_representative() -> None:
    """canonical() reproduces the labelling the NB101 release stores (the README query comes back relabelled)."""
    query, stored = SPACE.parse(arch(*INCEPTION_QUERY)), SPACE.parse(arch(*INCEPTION_STORED))
    assert query != stored
    assert SPACE.canonical(query) == stored
    assert graph_hash(query) == graph_hash(stored) == "28cfc7874f6d200472e1a9dcd8650aa0"
    assert nb101_params(stored) == 2_694_282
    row = SPACE.parse(arch(*ROW_3468426))
    assert SPACE.canonical(row) == row and nb101_params(row) == 3_468_426
    example = SPACE.parse(EXAMPLE_ARCH)
    assert SPACE.canonical(example) == example


def test_canonical_minimises_edge_bits() -> None:
    rng = random.Random(9)
    for _ in range(30):
        spec = SPACE.sample(rng)
        canon = SPACE.canonical(spec)
        n = spec.num_vertices
        for p in itertools.permutations(range(1, n - 1)):
            iso = relabel(spec, p)
            if iso is not None:
                assert edge_bits(canon.matrix) <= edge_bits(iso.matrix)


def test_canonical_is_idempotent_and_valid() -> None:
    rng = random.Random(5)
    for _ in range(30):
        canon = SPACE.canonical(SPACE.sample(rng))
        assert SPACE.canonical(canon) == canon
        assert SPACE.parse(SPACE.encode(canon)) == canon


# --- sample and mutate ----------------------------------------------------------------------------------------


def test_sample_is_valid_and_deterministic() -> None:
    specs = [SPACE.sample(random.Random(11)) for _ in range(2)]
    assert specs[0] == specs[1]
    rng = random.Random(0)
    sizes = set()
    for _ in range(200):
        spec = SPACE.sample(rng)
        assert SPACE.parse(SPACE.encode(spec)) == spec
        assert spec.num_edges <= MAX_EDGES and spec.num_vertices <= 7
        sizes.add(spec.num_vertices)
    assert sizes >= {2, 3, 4, 5, 6}


def test_mutate_gives_valid_different_neighbours() -> None:
    rng = random.Random(1)
    for _ in range(100):
        spec = SPACE.sample(rng)
        child = SPACE.mutate(spec, rng)
        assert SPACE.parse(SPACE.encode(child)) == child
        assert SPACE.canonical_hash(child) != SPACE.canonical_hash(spec)


def test_mutate_grows_the_smallest_cell() -> None:
    two = SPACE.parse(arch([[0, 1], [0, 0]], ["input", "output"]))
    child = SPACE.mutate(two, random.Random(0))
    assert child.num_vertices > 2


def test_space_attributes() -> None:
    assert SPACE.name == "nb101" and SPACE.size == 423_624 and SPACE.max_arch_length == 1000
    assert len(SPACE.example) <= SPACE.max_arch_length
    assert SPACE.flops_m(SPACE.parse(SPACE.example)) is None


# --- network ----------------------------------------------------------------------------------------------


def test_forward_and_cell_features() -> None:
    torch = pytest.importorskip("torch")
    from zcscore.spaces.nb101_net import NB101Network, build_nb101

    assert isinstance(SPACE.build(SPACE.parse(EXAMPLE_ARCH)), NB101Network)
    torch.manual_seed(0)
    net = build_nb101(EXAMPLE_ARCH, 10)
    assert isinstance(net.classifier, torch.nn.Linear)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = net(x)
        feats = net.extract_cell_features(x)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    assert len(feats) == 10
    assert [tuple(f.shape[1:]) for f in feats] == [(128, 32, 32)] * 4 + [(256, 16, 16)] * 3 + [(512, 8, 8)] * 3
    pooled = feats[-1].mean(dim=(2, 3))
    torch.testing.assert_close(net.classifier(pooled), logits)


def test_forward_small_cells() -> None:
    """Input-only cell (projection alone); input->output skip with a 43-channel vertex truncated to 42 (1->3)."""
    torch = pytest.importorskip("torch")
    skip_trunc = arch(
        [[0, 1, 0, 0, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
        ["input", "conv1x1-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "output"],
    )
    for text in (arch([[0, 1], [0, 0]], ["input", "output"]), skip_trunc):
        torch.manual_seed(0)
        net = SPACE.build(SPACE.parse(text), 5)
        with torch.no_grad():
            assert net(torch.randn(2, 3, 32, 32)).shape == (2, 5)
