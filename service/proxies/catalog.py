"""The proxy catalogue: what every registered proxy is and needs, without importing torch.

The API validates proxy names and builds cache keys from these specs; the engine groups proxies by the
network pass they read. Implementations register against a spec with :func:`zcscore.proxies.registry.proxy`.
Changed math means a new ``version``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum


class InputKind(str, Enum):
    """What a proxy feeds the network."""

    GAUSSIAN = "gaussian"
    REAL = "real"
    CONSTANT = "constant"
    NONE = "none"


class Pass(str, Enum):
    """Network passes the engine runs once per arch and shares between the proxies that read them.

    The engine runs a network's passes in this order; each pass starts from the restored "seeded,
    freshly built" state, so the order never changes a score. A new pass is a member here, its
    :data:`PASSES` entry, and its ``@pass_runner`` in the proxy module.
    """

    AZ = "az"  # kaiming fan_in re-init, N(0,1) 64x3x32x32, train BN, cell features + Rademacher VJPs
    REAL_GRADS = "real_grads"  # default init, real batches of 64, CE, per-batch weight gradients
    INTRAIN = "intrain"  # Gaussian 64x3x64x64, random labels, CE: activations + gradients
    EPSINAS = "epsinas"  # two constant-weight forwards of one real batch of 256
    STATIC = "static"  # no pass: counted from the module (params, FLOPs)


@dataclass(frozen=True)
class ProxySpec:
    """A proxy's identity and protocol.

    ``pass_args`` parameterise the shared pass (e.g. how many real batches); ``sentinel`` documents what a
    degenerate network scores; ``population`` proxies are rank aggregates over a set of archs and are
    computed by :mod:`zcscore.aggregate` from their ``components`` with their ``aggregation``.
    """

    name: str
    version: int
    input: InputKind
    needs_grad: bool
    passes: frozenset[Pass]
    description: str
    sentinel: str = "none"
    higher_is_better: bool = True
    population: bool = False
    components: tuple[str, ...] = ()
    # how a population proxy combines its components over the set (a name in zcscore.aggregate.AGGREGATIONS):
    # "log_rank" (AZ-NAS: sum_k log(rank_k/m)), "rank_sum" (TE-NAS), "vkdnw" / "vkdnw_agg" (VKDNW)
    aggregation: str = "log_rank"
    pass_args: dict[str, int] = field(default_factory=dict, hash=False, compare=False)

    @property
    def input_protocol(self) -> str:
        """Human-readable input protocol recorded with every score (passes in :class:`Pass` order: stable)."""
        return "; ".join(PASSES[p].protocol for p in Pass if p in self.passes) or "none"

    @property
    def needs_data(self) -> bool:
        """Whether a pass of this proxy reads real images (their digest is then part of the cache key)."""
        return any(PASSES[p].needs_data for p in self.passes)

    @property
    def needs_network_pass(self) -> bool:
        """Whether a pass runs the network (its numerics are then part of the cache key)."""
        return any(PASSES[p].runs_network for p in self.passes)


@dataclass(frozen=True)
class PassInfo:
    """What a pass feeds the network, and whether it needs real data or runs the network at all."""

    protocol: str
    needs_data: bool = False
    runs_network: bool = True


PASSES: dict[Pass, PassInfo] = {
    Pass.AZ: PassInfo(
        "gaussian N(0,1) 64x3x32x32 (64 x the space's input on MobileNetV2/DAG/timm), kaiming_normal fan_in "
        "re-init, train-mode BN"
    ),
    Pass.REAL_GRADS: PassInfo(
        "real CIFAR-10 batches of 64 (rows 64j..64j+63), default init, train-mode BN, CE", needs_data=True
    ),
    Pass.INTRAIN: PassInfo("gaussian N(0,1) 64x3x64x64, random labels, default init, train-mode BN, CE"),
    Pass.EPSINAS: PassInfo(
        "real CIFAR-10 batch of 256 (rows 0..255), constant weights (1e-7, 1), batch-stat BN", needs_data=True
    ),
    Pass.STATIC: PassInfo("none (counted from the module; FLOPs at 1x3x32x32)", runs_network=False),
}

_G = InputKind.GAUSSIAN
_R = InputKind.REAL
_AZ = frozenset({Pass.AZ})
_RG = frozenset({Pass.REAL_GRADS})
_IT = frozenset({Pass.INTRAIN})
_ST = frozenset({Pass.STATIC})

CATALOG: tuple[ProxySpec, ...] = (
    ProxySpec(
        "intrain",
        1,
        _G,
        True,
        _IT,
        "InTrain: gamma*(1+o)/log(L+1) (capacity x resilience; PR per Conv2d/Linear output, h per parameter tensor)",
        sentinel="nan (non-finite activations or gradients); a constant layer has PR = its channel count",
    ),
    ProxySpec(
        "intrain_pr",
        1,
        _G,
        True,
        _IT,
        "InTrain ablation: capacity gamma = sum_l log PR(C_l) only",
        sentinel="nan (non-finite activations)",
    ),
    ProxySpec(
        "intrain_grad",
        1,
        _G,
        True,
        _IT,
        "InTrain ablation: resilience o = sum_i h(theta_i) only",
        sentinel="nan (non-finite gradients)",
    ),
    ProxySpec(
        "intrain_add",
        1,
        _G,
        True,
        _IT,
        "InTrain ablation: additive coupling gamma + o (paper Sec. 3.4)",
        sentinel="nan (non-finite activations or gradients)",
    ),
    ProxySpec(
        "epsinas",
        1,
        InputKind.CONSTANT,
        False,
        frozenset({Pass.EPSINAS}),
        "epsinas: MAE/mean of min-max normalised outputs under two constant weights",
        sentinel="nan (constant output, or a score of exactly 0)",
    ),
    ProxySpec(
        "az_expressivity",
        1,
        _G,
        False,
        _AZ,
        "AZ-NAS expressivity: sum of feature eigen-entropies",
        sentinel="-inf (NaN, e.g. all-zero cell output)",
    ),
    ProxySpec("az_progressivity", 1, _G, False, _AZ, "AZ-NAS progressivity: min entropy increase", sentinel="-inf"),
    ProxySpec(
        "az_trainability",
        1,
        _G,
        True,
        _AZ,
        "AZ-NAS trainability: mean of -s-1/s+2 over block VJPs",
        sentinel="-inf (identity block or NaN)",
    ),
    ProxySpec("az_complexity", 1, InputKind.NONE, False, _ST, "AZ-NAS complexity: FLOPs (NATS convention)"),
    ProxySpec(
        "az_nas",
        1,
        _G,
        True,
        _AZ | _ST,
        "AZ-NAS: sum over {FLOPs, expressivity, progressivity, trainability} of log(rank/N) over the set",
        population=True,
        components=("az_expressivity", "az_progressivity", "az_trainability", "az_complexity"),
    ),
    ProxySpec(
        "zico",
        1,
        _R,
        True,
        _RG,
        "ZiCo: sum over layers of log sum mean|g|/std(g) over 2 batches",
        sentinel="0 (every layer skipped)",
        pass_args={"batches": 2},
    ),
    ProxySpec(
        "xi_gsnr",
        1,
        _R,
        True,
        _RG,
        "xi-GSNR: sum of mean(G)^2/(var(G)+1e-8) over 8 accumulated (never zeroed) batch gradients",
        sentinel="0 (all layer variances zero)",
        pass_args={"batches": 8},
    ),
    ProxySpec("params", 1, InputKind.NONE, False, _ST, "number of parameters (M), BN included"),
    ProxySpec("flops", 1, InputKind.NONE, False, _ST, "FLOPs (M) at 1x3x32x32, NATS-Bench convention"),
)

_BY_NAME = {spec.name: spec for spec in CATALOG}


def get_spec(name: str) -> ProxySpec:
    """The spec of proxy ``name`` (or of an ``ensemble:a+b`` of them); raises ``KeyError`` naming the known proxies."""
    from zcscore.proxies.ensembles import ensemble_spec, is_ensemble

    if is_ensemble(name):
        return ensemble_spec(name, get_spec)
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown proxy {name!r} (known: {', '.join(_BY_NAME)})") from None


def list_specs() -> list[ProxySpec]:
    """All proxy specs, in catalogue order."""
    return list(CATALOG)


def list_proxies() -> list[str]:
    """Names of every registered proxy, in catalogue order."""
    return [spec.name for spec in CATALOG]


def expand(names: Iterable[str]) -> list[ProxySpec]:
    """The proxies computed per arch for ``names``: population proxies replaced by their components.

    Order of first appearance, duplicates removed; raises ``KeyError`` for an unknown name.
    """
    out: dict[str, ProxySpec] = {}
    for name in names:
        spec = get_spec(name)
        for part in spec.components if spec.population else (spec.name,):
            out.setdefault(part, get_spec(part))
    return list(out.values())
