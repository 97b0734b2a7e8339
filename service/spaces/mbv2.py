"""The MobileNetV2 search space (the Zen-NAS / ZiCo ImageNet space): archs, encodings, closed-form costs.

Torch-free on purpose: the API validates and hashes archs and checks FLOPs budgets without importing
torch. The network itself lives in :mod:`zcscore.spaces.mbv2_net`.

An arch is a stem width, a sequence of stages of inverted-residual blocks, a final 1x1 width and an input
resolution. Each stage has an expansion ratio ``e``, a depthwise kernel ``k`` (3, 5 or 7), a stride ``s``
(applied by its first block), a depth ``d`` (blocks), an output width ``w`` and an optional
squeeze-excite flag. The compact encoding (what :meth:`MBV2Space.encode` writes)::

    r224-s32-[e1k3s1d1w16][e6k3s2d2w24][e6k3s2d3w32se]...-l1280

is ``r<resolution>-s<stem width>-<stages>-l<last width>``, one ``[e..k..s..d..w..]`` group per stage with a
trailing ``se`` inside the brackets when the stage uses squeeze-excite; the ``r<resolution>-`` prefix may
be left out (224). :meth:`MBV2Space.parse` also accepts JSON::

    {"resolution": 224, "stem": 32, "stages": [{"e": 1, "k": 3, "s": 1, "d": 1, "w": 16, "se": false}, ...],
     "last": 1280}

(``resolution`` and each ``se`` optional). Errors are :class:`SpaceError` whose ``field`` names the bad
part: ``resolution``, ``stem``, ``last``, ``stages`` or ``stages[i].e`` / ``.k`` / ``.s`` / ``.d`` /
``.w`` / ``.se`` (``i`` counted from 0).

Costs. :func:`params` and :func:`macs` are exact closed forms of the network
:func:`zcscore.spaces.mbv2_net.build_mbv2` builds. MACs are multiply-accumulates of one image at the
arch's resolution over convolutions and the classifier only (weights, no bias adds; BN, activations,
pooling, the SE gate multiply and residual adds are free): the convention MobileNet, Zen-NAS, ZiCo and
AZ-NAS quote as "FLOPs". So in this space FLOPs ARE MACs: :meth:`MBV2Space.flops_m` and the budgets
(450M / 600M / 1000M in the papers) are MACs in millions. MobileNetV2-1.0 (:data:`MOBILENET_V2_1_0`)
has 3,504,872 params and 300.8 M MACs, as torchvision reports.

The search range (what :meth:`MBV2Space.sample` draws and :meth:`MBV2Space.mutate` moves within) keeps
MobileNetV2's seven stages and their strides and varies everything else; see :data:`SEARCH_STAGES`.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from zcscore.spaces.base import Space, SpaceError

if TYPE_CHECKING:
    from torch import nn

KERNELS: tuple[int, ...] = (3, 5, 7)
STRIDES: tuple[int, ...] = (1, 2)
# Validation limits of parsed archs (the search range below is much narrower).
MIN_RESOLUTION, MAX_RESOLUTION = 16, 1024
MAX_EXPANSION = 16
MAX_DEPTH = 16
MAX_STAGES = 12
MAX_WIDTH = 4096
MAX_LAST_WIDTH = 8192
MAX_SAMPLE_TRIES = 20_000  # rejection-sampling / mutation attempts before giving up on a budget


@dataclass(frozen=True)
class Stage:
    """One stage: ``depth`` inverted-residual blocks of expansion/kernel, the first with ``stride``."""

    expansion: int
    kernel: int
    stride: int
    depth: int
    width: int
    se: bool = False

    def encode(self) -> str:
        """The compact ``[e..k..s..d..w..(se)]`` group."""
        se = "se" if self.se else ""
        return f"[e{self.expansion}k{self.kernel}s{self.stride}d{self.depth}w{self.width}{se}]"


@dataclass(frozen=True)
class MBV2Arch:
    """A MobileNetV2-style network: stem width, stages, final 1x1 width and input resolution."""

    stem_width: int
    stages: tuple[Stage, ...]
    last_width: int
    resolution: int = 224

    def encode(self) -> str:
        """The compact string ``r<res>-s<stem>-[stage]...-l<last>``."""
        body = "".join(s.encode() for s in self.stages)
        return f"r{self.resolution}-s{self.stem_width}-{body}-l{self.last_width}"

    def to_json(self) -> str:
        """The JSON form accepted by :func:`parse_arch`."""
        stages = [
            {"e": s.expansion, "k": s.kernel, "s": s.stride, "d": s.depth, "w": s.width, "se": s.se}
            for s in self.stages
        ]
        doc = {"resolution": self.resolution, "stem": self.stem_width, "stages": stages, "last": self.last_width}
        return json.dumps(doc, separators=(",", ":"))


MOBILENET_V2_1_0 = MBV2Arch(
    stem_width=32,
    stages=(
        Stage(1, 3, 1, 1, 16),
        Stage(6, 3, 2, 2, 24),
        Stage(6, 3, 2, 3, 32),
        Stage(6, 3, 2, 4, 64),
        Stage(6, 3, 1, 3, 96),
        Stage(6, 3, 2, 3, 160),
        Stage(6, 3, 1, 1, 320),
    ),
    last_width=1280,
)
"""MobileNetV2-1.0 at 224x224 (Sandler et al. 2018; torchvision ``mobilenet_v2``)."""


# ---------------------------------------------------------------------------------------------- parsing


def _check_int(value: Any, field: str, lo: int, hi: int, allowed: tuple[int, ...] | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpaceError(f"{field} must be an integer, got {value!r}", field=field)
    if allowed is not None and value not in allowed:
        raise SpaceError(f"{field} must be one of {', '.join(map(str, allowed))}, got {value}", field=field)
    if not lo <= value <= hi:
        raise SpaceError(f"{field} must be in {lo}..{hi}, got {value}", field=field)
    return value


def _make_stage(i: int, e: Any, k: Any, s: Any, d: Any, w: Any, se: Any) -> Stage:
    f = f"stages[{i}]"
    if not isinstance(se, bool):
        raise SpaceError(f"{f}.se must be a boolean, got {se!r}", field=f"{f}.se")
    return Stage(
        expansion=_check_int(e, f"{f}.e", 1, MAX_EXPANSION),
        kernel=_check_int(k, f"{f}.k", min(KERNELS), max(KERNELS), KERNELS),
        stride=_check_int(s, f"{f}.s", 1, 2, STRIDES),
        depth=_check_int(d, f"{f}.d", 1, MAX_DEPTH),
        width=_check_int(w, f"{f}.w", 1, MAX_WIDTH),
        se=se,
    )


def _make_arch(resolution: Any, stem: Any, stages: list[Stage], last: Any) -> MBV2Arch:
    if not stages:
        raise SpaceError("an arch needs at least one stage", field="stages")
    if len(stages) > MAX_STAGES:
        raise SpaceError(f"at most {MAX_STAGES} stages, got {len(stages)}", field="stages")
    return MBV2Arch(
        stem_width=_check_int(stem, "stem", 1, MAX_WIDTH),
        stages=tuple(stages),
        last_width=_check_int(last, "last", 1, MAX_LAST_WIDTH),
        resolution=_check_int(resolution, "resolution", MIN_RESOLUTION, MAX_RESOLUTION),
    )


_STAGE_RE = re.compile(r"e(\d+)k(\d+)s(\d+)d(\d+)w(\d+)(se)?")
_STAGE_KEYS = ("e", "k", "s", "d", "w")


def _parse_json(text: str) -> MBV2Arch:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpaceError(f"invalid JSON arch: {exc.msg} at position {exc.pos}", field="json") from None
    if not isinstance(doc, dict):
        raise SpaceError("a JSON arch must be an object", field="json")
    unknown = sorted(set(doc) - {"resolution", "stem", "stages", "last"})
    if unknown:
        raise SpaceError(f"unknown arch key(s): {', '.join(map(str, unknown))}", field=str(unknown[0]))
    for key in ("stem", "stages", "last"):
        if key not in doc:
            raise SpaceError(f"missing arch key {key!r}", field=key)
    raw = doc["stages"]
    if not isinstance(raw, list):
        raise SpaceError("stages must be a list of stage objects", field="stages")
    stages: list[Stage] = []
    for i, st in enumerate(raw):
        f = f"stages[{i}]"
        if not isinstance(st, dict):
            raise SpaceError(f"{f} must be an object with keys e, k, s, d, w (and optional se)", field=f)
        extra = sorted(set(st) - {*_STAGE_KEYS, "se"})
        if extra:
            raise SpaceError(f"unknown key(s) in {f}: {', '.join(map(str, extra))}", field=f"{f}.{extra[0]}")
        for key in _STAGE_KEYS:
            if key not in st:
                raise SpaceError(f"{f} is missing {key!r}", field=f"{f}.{key}")
        stages.append(_make_stage(i, st["e"], st["k"], st["s"], st["d"], st["w"], st.get("se", False)))
    return _make_arch(doc.get("resolution", 224), doc["stem"], stages, doc["last"])


def _parse_compact(text: str) -> MBV2Arch:
    parts = text.split("-")
    if len(parts) == 3 and parts[0].startswith("s"):
        parts = ["r224", *parts]  # resolution prefix left out
    if len(parts) != 4:
        raise SpaceError(
            f"arch must read r<res>-s<stem>-[stage]...-l<last>, got {len(parts)} '-'-separated parts", field="arch"
        )
    res_tok, stem_tok, body, last_tok = parts
    values: dict[str, int] = {}
    for tok, prefix, field in ((res_tok, "r", "resolution"), (stem_tok, "s", "stem"), (last_tok, "l", "last")):
        if not (tok.startswith(prefix) and tok[1:].isdecimal() and tok[1:].isascii()):
            raise SpaceError(f"{field} token must read {prefix}<integer>, got {tok!r}", field=field)
        values[field] = int(tok[1:])
    if not (body.startswith("[") and body.endswith("]")):
        raise SpaceError(f"stages must be bracketed groups [e..k..s..d..w..], got {body!r}", field="stages")
    groups = body[1:-1].split("][")
    if len(groups) > MAX_STAGES:
        raise SpaceError(f"at most {MAX_STAGES} stages, got {len(groups)}", field="stages")
    stages: list[Stage] = []
    for i, group in enumerate(groups):
        m = _STAGE_RE.fullmatch(group)
        if m is None or not group.isascii():
            raise SpaceError(
                f"stage {i} must read e<int>k<int>s<int>d<int>w<int>[se], got [{group}]", field=f"stages[{i}]"
            )
        e, k, s, d, w = (int(g) for g in m.groups()[:5])
        stages.append(_make_stage(i, e, k, s, d, w, m.group(6) is not None))
    return _make_arch(values["resolution"], values["stem"], stages, values["last"])


def parse_arch(text: str) -> MBV2Arch:
    """Parse and validate a compact or JSON arch; raises :class:`SpaceError` naming the bad field."""
    if not isinstance(text, str):
        raise SpaceError(f"arch must be a string, got {type(text).__name__}", field="arch")
    stripped = text.strip()
    if not stripped:
        raise SpaceError("arch is empty", field="arch")
    if stripped.startswith("{"):
        return _parse_json(stripped)
    return _parse_compact(stripped)


# ---------------------------------------------------------------------------------------------- costs


def se_channels(hidden: int) -> int:
    """Squeeze width of the SE module on a ``hidden``-channel block: a quarter, at least 8."""
    return max(8, hidden // 4)


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block as built: widths, expansion, kernel, stride, SE flag."""

    c_in: int
    c_out: int
    expansion: int
    kernel: int
    stride: int
    se: bool

    @property
    def hidden(self) -> int:
        """Width of the expanded (depthwise) layer."""
        return self.c_in * self.expansion

    @property
    def residual(self) -> bool:
        """Whether the block adds its input (stride 1 and equal widths)."""
        return self.stride == 1 and self.c_in == self.c_out


def blocks(arch: MBV2Arch) -> Iterator[BlockSpec]:
    """Every block of ``arch`` in order (the stage stride on each stage's first block)."""
    c = arch.stem_width
    for st in arch.stages:
        for j in range(st.depth):
            yield BlockSpec(c, st.width, st.expansion, st.kernel, st.stride if j == 0 else 1, st.se)
            c = st.width


def _out_size(size: int, stride: int) -> int:
    # odd kernel k, padding k // 2: floor((size - 1) / stride) + 1
    return (size - 1) // stride + 1


def params(arch: MBV2Arch, num_classes: int = 1000) -> int:
    """Exact trainable-parameter count of the built network (conv weights, BN affine, SE and head biases)."""
    total = 3 * 9 * arch.stem_width + 2 * arch.stem_width
    for b in blocks(arch):
        h = b.hidden
        if b.expansion != 1:
            total += b.c_in * h + 2 * h
        total += h * b.kernel * b.kernel + 2 * h
        if b.se:
            sq = se_channels(h)
            total += (h * sq + sq) + (sq * h + h)
        total += h * b.c_out + 2 * b.c_out
    c_last = arch.stages[-1].width
    total += c_last * arch.last_width + 2 * arch.last_width
    total += arch.last_width * num_classes + num_classes
    return total


def macs(arch: MBV2Arch, num_classes: int = 1000) -> int:
    """Exact multiply-accumulates of one image at ``arch.resolution`` (conv + linear weights only)."""
    size = _out_size(arch.resolution, 2)
    total = 27 * arch.stem_width * size * size
    for b in blocks(arch):
        h = b.hidden
        if b.expansion != 1:
            total += b.c_in * h * size * size
        size = _out_size(size, b.stride)
        total += h * b.kernel * b.kernel * size * size
        if b.se:
            total += 2 * h * se_channels(h)
        total += h * b.c_out * size * size
    total += arch.stages[-1].width * arch.last_width * size * size
    total += arch.last_width * num_classes
    return total


# ---------------------------------------------------------------------------------------------- search range


@dataclass(frozen=True)
class StageRange:
    """The values one stage may take when sampled or mutated (the stride is fixed)."""

    stride: int
    expansions: tuple[int, ...]
    depths: tuple[int, ...]
    widths: tuple[int, ...]


def _mult8(lo: int, hi: int) -> tuple[int, ...]:
    return tuple(range(lo, hi + 1, 8))


SEARCH_STAGES: tuple[StageRange, ...] = (
    # MobileNetV2 (t, c, n, s) -> expansions, depths, widths (multiples of 8 in 0.5c..2c)
    StageRange(1, (1,), (1, 2), _mult8(8, 32)),  # (1, 16, 1, 1); kept MB1, as in ProxylessNAS
    StageRange(2, (1, 2, 4, 6), tuple(range(1, 6)), _mult8(16, 48)),  # (6, 24, 2, 2)
    StageRange(2, (1, 2, 4, 6), tuple(range(1, 7)), _mult8(16, 64)),  # (6, 32, 3, 2)
    StageRange(2, (1, 2, 4, 6), tuple(range(1, 9)), _mult8(32, 128)),  # (6, 64, 4, 2)
    StageRange(1, (1, 2, 4, 6), tuple(range(1, 7)), _mult8(48, 192)),  # (6, 96, 3, 1)
    StageRange(2, (1, 2, 4, 6), tuple(range(1, 7)), _mult8(80, 320)),  # (6, 160, 3, 2)
    StageRange(1, (1, 2, 4, 6), (1, 2, 3), _mult8(160, 640)),  # (6, 320, 1, 1)
)
"""Per-stage search range: the seven MobileNetV2 stages with their strides (1, 2, 2, 2, 1, 2, 1); kernels
3/5/7 everywhere; SE on or off per stage only when the space has ``search_se``. Uniform draws at 224 have
a median of about 415M MACs (68M..1.4G); about 57 % fit 450M, 80 % fit 600M and 99 % fit 1000M."""
STEM_WIDTHS: tuple[int, ...] = _mult8(16, 64)
LAST_WIDTHS: tuple[int, ...] = _mult8(640, 2048)


def _range_for(index: int) -> StageRange:
    # archs with more stages than the table (parsed, not sampled) reuse the last stage's range
    return SEARCH_STAGES[min(index, len(SEARCH_STAGES) - 1)]


class MBV2Space(Space):
    """The MobileNetV2 space of Zen-NAS / ZiCo / AZ-NAS on ImageNet, optionally under a MACs budget.

    ``flops_max_m`` is the budget in millions of MACs (the papers' "FLOPs") counted with
    ``num_classes`` outputs at each arch's own resolution; :meth:`sample` rejects and :meth:`mutate`
    retries until an arch fits. ``resolution`` is the input size of sampled archs; ``search_se`` lets
    sampling and mutation switch squeeze-excite per stage (off by default: the papers' space has no SE).
    """

    name = "mbv2"
    description = "MobileNetV2 space (Zen-NAS / ZiCo / AZ-NAS ImageNet), inverted residuals, MACs budget"
    example = MOBILENET_V2_1_0.encode()
    max_arch_length = 2000
    size = None
    input_shape: tuple[int, ...] = (3, 224, 224)

    def __init__(
        self,
        flops_max_m: float | None = None,
        resolution: int = 224,
        num_classes: int = 1000,
        search_se: bool = False,
    ) -> None:
        if flops_max_m is not None and not flops_max_m > 0:
            raise ValueError(f"flops_max_m must be positive, got {flops_max_m}")
        self.flops_max_m = flops_max_m
        self.resolution = _check_int(resolution, "resolution", MIN_RESOLUTION, MAX_RESOLUTION)
        self.num_classes = num_classes
        self.search_se = search_se

    def unsupported(self, proxy: str) -> str | None:
        """The real-data proxies: their protocol reads CIFAR-10 batches, this space is searched on ImageNet."""
        from zcscore.proxies.catalog import get_spec

        if get_spec(proxy).needs_data:
            return (
                "it reads real CIFAR-10 images at 32x32, and this space is searched on ImageNet at its own resolution "
                "(no ImageNet batches are shipped); use az_nas, intrain, params or flops"
            )
        return None

    def with_budget(self, flops_max_m: float | None) -> MBV2Space:
        """The same space with a different MACs budget (millions; None for no budget)."""
        return MBV2Space(flops_max_m, self.resolution, self.num_classes, self.search_se)

    # -- Space interface

    def parse(self, text: str) -> MBV2Arch:
        """Parse and validate a compact or JSON arch (:class:`SpaceError` names the bad field)."""
        return parse_arch(text)

    def encode(self, arch: Any) -> str:
        """The compact string encoding."""
        return str(arch.encode())

    def input_shape_for(self, arch: Any) -> tuple[int, int, int]:
        """One input image of ``arch``: ``(3, resolution, resolution)``."""
        r = int(arch.resolution)
        return (3, r, r)

    def build(self, arch: Any, num_classes: int = 1000) -> nn.Module:
        """The MobileNetV2-style network of ``arch``."""
        from zcscore.spaces.mbv2_net import build_mbv2

        return build_mbv2(arch, num_classes)

    def flops_m(self, arch: Any, num_classes: int = 1000) -> float | None:
        """MACs (M) of one image at the arch's resolution: this space's FLOPs are MACs, as MobileNet papers report."""
        return macs(arch, num_classes) / 1e6

    def params_m(self, arch: Any, num_classes: int = 1000) -> float:
        """Trainable parameters (M) of the built network."""
        return params(arch, num_classes) / 1e6

    def within_budget(self, arch: MBV2Arch) -> bool:
        """Whether ``arch`` fits the space's MACs budget (always, without one)."""
        return self.flops_max_m is None or macs(arch, self.num_classes) <= self.flops_max_m * 1e6

    def sample(self, rng: random.Random) -> MBV2Arch:
        """A uniform draw from the search range, rejected until it fits the budget."""
        for _ in range(MAX_SAMPLE_TRIES):
            arch = self._draw(rng)
            if self.within_budget(arch):
                return arch
        raise SpaceError(f"no arch within {self.flops_max_m}M MACs after {MAX_SAMPLE_TRIES} draws", field="budget")

    def mutate(self, arch: Any, rng: random.Random) -> MBV2Arch:
        """One field changed (a stage's e/k/d/w/[se], or the stem or last width), retried until within budget."""
        for _ in range(MAX_SAMPLE_TRIES):
            child = self._mutate_once(arch, rng)
            if self.within_budget(child):
                return child
        raise SpaceError(
            f"no mutation of {arch.encode()} within {self.flops_max_m}M MACs after {MAX_SAMPLE_TRIES} tries",
            field="budget",
        )

    # -- helpers

    def _draw(self, rng: random.Random) -> MBV2Arch:
        stages = tuple(
            Stage(
                expansion=rng.choice(r.expansions),
                kernel=rng.choice(KERNELS),
                stride=r.stride,
                depth=rng.choice(r.depths),
                width=rng.choice(r.widths),
                se=rng.random() < 0.5 if self.search_se else False,
            )
            for r in SEARCH_STAGES
        )
        return MBV2Arch(rng.choice(STEM_WIDTHS), stages, rng.choice(LAST_WIDTHS), self.resolution)

    def _mutate_once(self, arch: MBV2Arch, rng: random.Random) -> MBV2Arch:
        # every (target, field, alternatives) with at least one alternative value
        moves: list[tuple[int, str, tuple[Any, ...]]] = [
            (-1, "stem", tuple(v for v in STEM_WIDTHS if v != arch.stem_width)),
            (-1, "last", tuple(v for v in LAST_WIDTHS if v != arch.last_width)),
        ]
        for i, st in enumerate(arch.stages):
            r = _range_for(i)
            options: dict[str, tuple[Any, ...]] = {
                "expansion": r.expansions,
                "kernel": KERNELS,
                "depth": r.depths,
                "width": r.widths,
            }
            if self.search_se:
                options["se"] = (False, True)
            for field, values in options.items():
                moves.append((i, field, tuple(v for v in values if v != getattr(st, field))))
        moves = [m for m in moves if m[2]]
        target, field, values = rng.choice(moves)
        value = rng.choice(values)
        if target < 0:
            if field == "stem":
                return replace(arch, stem_width=value)
            return replace(arch, last_width=value)
        stages = list(arch.stages)
        stages[target] = replace(stages[target], **{field: value})
        return replace(arch, stages=tuple(stages))
