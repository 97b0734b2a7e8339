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
    # -- VKDNW, MeCo, SWAP (issue 11)
    VKDNW = "vkdnw"  # kaiming fan_in re-init, N(0,1) 64x3x32x32, eval BN: logit Jacobian of 1 weight per tensor
    VKDNW_JACOV = "vkdnw_jacov"  # kaiming fan_in re-init, real batch of 64, train BN: input Jacobian of sum(logits)
    MECO = "meco"  # default init, one real image, train BN: forward hooks on every module
    SWAP = "swap"  # N(0,1) re-init x32, 16 real images, train BN: sign patterns of nn.ReLU outputs
    # -- classic zero-cost-nas proxies (issue 11; zcscore.proxies.classic / synflow)
    CLASSIC = "classic"  # default init, real batch of 64, train BN, CE: weight/activation grads, Hg, input Jacobian
    SYNFLOW = "synflow"  # float64 |state_dict| copy, BN -> identity, all-ones batch of 1: sum |W * dR/dW|
    # -- NASWOT, Zen-NAS, TE-NAS (issue 11; zcscore.proxies.naswot / zen / tenas)
    NASWOT = "naswot"  # default init, real batch of 128, train BN: binary codes of the inputs of 'ReLU' modules
    ZEN = "zen"  # N(0,1) re-init, N(0,1) 64x3x32x32 and a 1e-2 perturbation, train BN: pre-GAP L1 + BN log-scales
    TENAS_NTK = "tenas_ntk"  # default init, real batch of 64, train BN: per-sample grads of sum(logits) -> NTK
    TENAS_LR = "tenas_lr"  # default init, N(0,1) 64x3x32x32, train BN: sign patterns of nn.ReLU outputs


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
        "real CIFAR-10 batch of 256 (rows 0..255), constant weights (1e-7, 1); NB101: (1e-4, 10), batch-stat BN",
        needs_data=True,
    ),
    Pass.STATIC: PassInfo("none (counted from the module; FLOPs at 1x3x32x32)", runs_network=False),
    # -- VKDNW, MeCo, SWAP (issue 11)
    Pass.VKDNW: PassInfo(
        "gaussian N(0,1) 64x3x32x32 (64 x the space's input elsewhere), kaiming_normal fan_in re-init, eval-mode BN "
        "(fresh running stats)"
    ),
    Pass.VKDNW_JACOV: PassInfo(
        "real CIFAR-10 batch of 64 (rows 0..63), kaiming_normal fan_in re-init, train-mode BN", needs_data=True
    ),
    Pass.MECO: PassInfo("one real CIFAR-10 image (row 0), default init, train-mode BN", needs_data=True),
    Pass.SWAP: PassInfo(
        "16 real CIFAR-10 images (rows 0..15), N(0,1) conv/linear re-init repeated 32 times, train-mode BN",
        needs_data=True,
    ),
    # -- classic zero-cost-nas proxies (issue 11; zcscore.proxies.classic / synflow)
    Pass.CLASSIC: PassInfo("real CIFAR-10 batch of 64 (rows 0..63), default init, train-mode BN, CE", needs_data=True),
    Pass.SYNFLOW: PassInfo(
        "all-ones 1x3x32x32 float64 (1 x the space's input elsewhere), |weights, biases, buffers|, every BatchNorm "
        "as identity"
    ),
    # -- NASWOT, Zen-NAS, TE-NAS (issue 11)
    Pass.NASWOT: PassInfo("real CIFAR-10 batch of 128 (rows 0..127), default init, train-mode BN", needs_data=True),
    Pass.ZEN: PassInfo(
        "gaussian N(0,1) 64x3x32x32 (64 x the space's input elsewhere) + 1e-2 x N(0,1), N(0,1) conv/linear re-init, "
        "BN 1/0, train-mode BN"
    ),
    Pass.TENAS_NTK: PassInfo("real CIFAR-10 batch of 64 (rows 0..63), default init, train-mode BN", needs_data=True),
    Pass.TENAS_LR: PassInfo(
        "gaussian N(0,1) 64x3x32x32 (64 x the space's input elsewhere), default init, train-mode BN"
    ),
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
    # -- VKDNW, MeCo, SWAP (issue 11; zcscore.proxies.vkdnw / meco / swap)
    ProxySpec(
        "vkdnw_dim",
        1,
        InputKind.NONE,
        False,
        frozenset({Pass.STATIC}),
        "VKDNW dim: number of parameter tensors (len(named_parameters()))",
    ),
    ProxySpec(
        "vkdnw_entropy",
        1,
        _G,
        True,
        frozenset({Pass.VKDNW}),
        "VKDNW entropy: -sum t log(t+1e-10) of the 9 normalised deciles of the Fisher spectrum (first 128 tensors)",
        sentinel="0 (SVD failure or non-finite Fisher: lambdas = zeros(2)); rank-deficient Fisher: float noise",
    ),
    ProxySpec(
        "vkdnw_jacov",
        1,
        _R,
        True,
        frozenset({Pass.VKDNW_JACOV}),
        "VKDNW-fork jacov: -sum[log(v+1e-5)+1/(v+1e-5)] over eig of corrcoef of per-sample input Jacobians",
        sentinel="nan (failure, non-finite Jacobian or a negative eigenvalue below -1e-5)",
    ),
    ProxySpec(
        "vkdnw",
        1,
        _G,
        True,
        frozenset({Pass.STATIC, Pass.VKDNW}),
        "VKDNW_single: log of the dense rank of (vkdnw_dim, vkdnw_entropy) over the set",
        population=True,
        components=("vkdnw_dim", "vkdnw_entropy"),
        aggregation="vkdnw",
    ),
    ProxySpec(
        "vkdnw_agg",
        1,
        _R,
        True,
        frozenset({Pass.STATIC, Pass.VKDNW, Pass.AZ, Pass.VKDNW_JACOV}),
        "VKDNW_agg: VKDNW_single + sum of log average ranks of expressivity, trainability, FLOPs and jacov",
        population=True,
        components=(
            "vkdnw_dim",
            "vkdnw_entropy",
            "az_expressivity",
            "az_trainability",
            "az_complexity",
            "vkdnw_jacov",
        ),
        aggregation="vkdnw_agg",
    ),
    ProxySpec(
        "meco",
        1,
        _R,
        False,
        frozenset({Pass.MECO}),
        "MeCo: sum over every module output of the min eigenvalue of its channel correlation (one real image)",
        sentinel="0 (every module output constant or one value per channel)",
    ),
    ProxySpec(
        "swap",
        1,
        _R,
        False,
        frozenset({Pass.SWAP}),
        "regularised SWAP: mean over 32 N(0,1) inits of distinct ReLU sign patterns x exp(-(K params - mu)^2/sigma)",
        sentinel="nan (non-finite activations); 0 (no 4-D nn.ReLU input)",
    ),
    # -- classic zero-cost-nas proxies (issue 11; zcscore.proxies.classic / synflow)
    ProxySpec(
        "grad_norm",
        1,
        _R,
        True,
        frozenset({Pass.CLASSIC}),
        "grad_norm: sum over conv/linear layers of the Frobenius norm of the weight gradient (one real batch, CE)",
        sentinel="0 (no weight gradient); nan (non-finite gradients)",
    ),
    ProxySpec(
        "snip",
        1,
        _R,
        True,
        frozenset({Pass.CLASSIC}),
        "SNIP: sum of |W * dL/dW| over conv/linear weights (one real batch, CE)",
        sentinel="0 (no weight gradient); nan (non-finite gradients)",
    ),
    ProxySpec(
        "grasp",
        1,
        _R,
        True,
        frozenset({Pass.CLASSIC}),
        "GraSP (sign-flipped, zero-cost-nas): sum of -W * Hg over conv/linear weights (one real batch, CE)",
        sentinel="0 (no weight gradient); nan (non-finite gradients)",
        pass_args={"hessian": 1},
    ),
    ProxySpec(
        "fisher",
        1,
        _R,
        True,
        frozenset({Pass.CLASSIC}),
        "Fisher: per conv/linear output channel 0.5*mean_n (sum_space act*grad)^2, times the fan-in, summed",
        sentinel="0 (no activation gradient); nan (non-finite gradients)",
        pass_args={"fisher": 1},
    ),
    ProxySpec(
        "jacov",
        1,
        _R,
        True,
        frozenset({Pass.CLASSIC}),
        "jacob_cov: -sum[log(v+1e-5)+1/(v+1e-5)] over eig of corrcoef of per-sample input Jacobians of sum(logits)",
        sentinel="nan (zero/constant Jacobian row, non-finite Jacobian or eig failure; Suite-Zero stores -1e8)",
        pass_args={"jacobian": 1},
    ),
    ProxySpec(
        "synflow",
        1,
        InputKind.CONSTANT,
        True,
        frozenset({Pass.SYNFLOW}),
        "SynFlow: ln sum |W * dR/dW|, |weights|, BN as identity, all-ones float64 input (ln, as Suite-Zero stores it)",
        sentinel="-inf (S = 0: no path from input to output; Suite-Zero stores 0); +inf / nan beyond float64 x 2^2000",
    ),
    # -- NASWOT, Zen-NAS, TE-NAS (issue 11; zcscore.proxies.naswot / zen / tenas)
    ProxySpec(
        "naswot",
        1,
        _R,
        False,
        frozenset({Pass.NASWOT}),
        "NASWOT v2 (hook_logdet): log|det K|, K = sum over 'ReLU' modules of c c^T + (1-c)(1-c)^T of input codes",
        sentinel="-inf (singular K, e.g. no 'ReLU' module reaching the output); nan (slogdet failure)",
    ),
    ProxySpec(
        "zen",
        1,
        _G,
        False,
        frozenset({Pass.ZEN}),
        "Zen-NAS: log mean_b sum|f(x) - f(x + 0.01 eps)| (pre-GAP features) + sum_BN log sqrt(mean running_var)",
        sentinel="-inf (identical pre-GAP features, e.g. a cell output that is always 0; Suite-Zero stores -1e8); "
        "nan (non-finite features)",
    ),
    ProxySpec(
        "tenas_ntk",
        1,
        _R,
        True,
        frozenset({Pass.TENAS_NTK}),
        "TE-NAS NTK: -lambda_max/lambda_min of the NTK of per-sample sum(logits) over every '*weight*' parameter",
        sentinel="-1e5 (NaN condition number, e.g. an all-zero NTK); -1.8e308 for lambda_min = 0 (np.nan_to_num)",
    ),
    ProxySpec(
        "tenas_lr",
        1,
        _G,
        False,
        frozenset({Pass.TENAS_LR}),
        "TE-NAS linear regions: sum_i 1/#{j: code_j = code_i} over sign codes of 4-D nn.ReLU outputs (64 samples)",
        sentinel="1 (no nn.ReLU with a 4-D input: one linear region); nan (non-finite activations)",
    ),
    ProxySpec(
        "tenas",
        1,
        _R,
        True,
        frozenset({Pass.TENAS_NTK, Pass.TENAS_LR}),
        "TE-NAS (AZ-NAS per-arch port): rank(tenas_ntk) + rank(tenas_lr) over the set",
        population=True,
        components=("tenas_ntk", "tenas_lr"),
        aggregation="rank_sum",
    ),
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
