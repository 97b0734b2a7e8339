"""The scoring engine: many archs x many proxies, each network built once, passes shared.

Protocol for every pass (what makes scores reproducible and faithful): the engine seeds Python, NumPy
and torch with ``seed`` and builds the network, exactly as the official drivers do before calling a
proxy. It remembers the default weights and the RNG state right after construction; before each pass it
restores both, so every pass sees "seed, then a freshly built network" whatever ran before it. Random
draws are made on the CPU generator and moved to the device, so inputs are the same on CPU and CUDA.

Archs come from a registered :class:`~zcscore.spaces.Space` (NB201 by default). Isomorphs are scored once,
on the canonical representative of their class, so a score is a pure function of (class, proxy, seed,
numerics, data) and repeated/isomorphic archs in one set cost nothing extra. The engine sets the CPU thread
count before every network (:mod:`zcscore.numerics`).
"""

from __future__ import annotations

import logging
import math
import platform
import random
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from typing import Any

import numpy as np
import torch
from torch import nn

import zcscore
from zcscore.data import ArrayData, as_array_data, default_real_data
from zcscore.errors import classify
from zcscore.numerics import Numerics
from zcscore.proxies.catalog import Pass, ProxySpec, expand, get_spec
from zcscore.proxies.registry import get_impl, get_pass
from zcscore.records import ScoreRecord
from zcscore.spaces import Space, get_space

log = logging.getLogger(__name__)


@dataclass
class ScoreConfig:
    """How to score: the seed, device, numerics and input data shared by every proxy of a run."""

    seed: int = 1
    device: str = "cpu"
    threads: int = 1  # torch CPU threads, set before every network (part of a CPU score's cache key)
    num_classes: int = 10
    # None: on for CPU, where it makes NB201 passes ~2x faster. Still float32, but summation order changes:
    # ZiCo (a ratio over |g0-g1|) moves by up to a few % per arch, other proxies far less; set False for
    # bit-level agreement with the official codes.
    channels_last: bool | None = None
    # real images for data-dependent proxies: an ArrayData, a (images, labels) pair or a torch Dataset;
    # None resolves them (data dir, cache, download; see zcscore.data_source)
    data: Any = None
    # modules whose outputs AZ-NAS reads as features / InTrain as layers (names as in ``net.get_submodule``);
    # None: the documented defaults (``extract_cell_features`` or the top-level children; every Conv2d/Linear)
    feature_modules: tuple[str, ...] | None = None
    layer_modules: tuple[str, ...] | None = None

    def real_data(self) -> ArrayData:
        """The real-image source for data-dependent proxies."""
        if self.data is None:
            self.data = default_real_data()
        elif not isinstance(self.data, ArrayData):
            self.data = as_array_data(self.data)
        return self.data

    @property
    def numerics(self) -> Numerics:
        """Device kind, layout and CPU threads of this run."""
        return Numerics.resolve(self.device, self.threads, self.channels_last)

    def use_channels_last(self) -> bool:
        """Whether networks and inputs are laid out channels-last."""
        return self.numerics.channels_last


def has_strided_pointwise_conv(net: nn.Module) -> bool:
    """Whether ``net`` has a 1x1 ``Conv2d`` with stride > 1 (e.g. a ResNet downsample shortcut)."""
    return any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and max(m.stride) > 1 for m in net.modules())


def seed_everything(seed: int) -> None:
    """Seed ``random``, NumPy and torch (CPU and CUDA), as the official drivers' ``prepare_seed``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def use_exact_cuda_math() -> None:
    """Deterministic cuDNN and no TF32, as the official drivers run (``cudnn.deterministic=True``).

    TF32 convolutions and non-deterministic algorithms move gradient-ratio proxies (ZiCo divides by
    ``|g_0 - g_1|``) by percents between runs; full float32 keeps GPU scores repeatable and close to CPU.
    """
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


class ArchContext:
    """One built network plus what passes need: device, data, its space and arch, and a way back to its fresh state."""

    def __init__(
        self,
        net: nn.Module,
        config: ScoreConfig,
        rng_state: torch.Tensor,
        space: Space | None = None,
        arch: Any = None,
    ) -> None:
        self.config = config
        self.space = space
        self.arch = arch
        self.device = torch.device(config.device)
        # torch 2.13's CPU weight gradient of a strided 1x1 conv on channels-last inputs of 56x56 and more
        # crashes the process (segfault): such networks always run in NCHW (a fixed rule, so a score stays a
        # pure function of its key; provenance records the layout used)
        self.channels_last = config.use_channels_last() and not (
            self.device.type == "cpu" and has_strided_pointwise_conv(net)
        )
        self._init_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        self._rng_state = rng_state
        self.net = net.to(self.device)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stubs lack it

    def restore(self) -> nn.Module:
        """Reset weights, BN buffers and the torch RNG to 'seed, then freshly built'; returns the net."""
        with torch.no_grad():
            for k, v in self.net.state_dict().items():
                v.copy_(self._init_state[k])
        torch.set_rng_state(self._rng_state)
        random.seed(self.config.seed)
        np.random.seed(self.config.seed)
        self.net.train()
        self.net.zero_grad(set_to_none=True)
        return self.net

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        """Move an input batch to the device, in the network's memory layout."""
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @property
    def data(self) -> ArrayData:
        """Real images for data-dependent passes."""
        return self.config.real_data()

    def sync(self) -> None:
        """Wait for queued device work (so timings are honest on CUDA)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


@dataclass
class PassOutputs:
    """What the passes of one arch produced; proxies read ``outputs[Pass.X]``."""

    ctx: ArchContext
    results: dict[Pass, Any] = field(default_factory=dict)

    def __getitem__(self, kind: Pass) -> Any:
        return self.results[kind]


def _pass_args(specs: Iterable[ProxySpec]) -> dict[Pass, dict[str, int]]:
    """Union of the pass requirements of ``specs`` (numeric args merge by max)."""
    merged: dict[Pass, dict[str, int]] = {}
    for spec in specs:
        for kind in spec.passes:
            args = merged.setdefault(kind, {})
            for key, value in spec.pass_args.items():
                args[key] = max(args.get(key, value), value)
    return merged


class Engine:
    """Scores archs (or arbitrary modules) with a fixed list of proxies under one :class:`ScoreConfig`."""

    def __init__(self, proxies: Sequence[str], config: ScoreConfig | None = None, batch: int = 1) -> None:
        self.config = config or ScoreConfig()
        self.batch = max(int(batch), 1)  # archs per batched pass where one exists (zcscore.batched); 1: off
        self.requested = [get_spec(p) for p in proxies]
        self.direct = expand(proxies)
        self.pass_args = _pass_args(self.direct)
        self._set_threads()
        if self.config.device.startswith("cuda"):
            use_exact_cuda_math()

    def _set_threads(self) -> None:
        """Apply the configured CPU thread count (it changes summation order, so it is part of the key)."""
        threads = self.config.numerics.threads
        if threads and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    @cached_property
    def base_provenance(self) -> dict[str, Any]:
        """Provenance shared by every record of this engine."""
        data_id = None
        if any(s.needs_data for s in self.direct):
            try:
                data_id = self.config.real_data().source_id
            except Exception as exc:  # the data passes fail with the reason; provenance says so
                data_id = f"unavailable ({type(exc).__name__})"
        return {
            "seed": self.config.seed,
            "device": str(self.config.device),
            "device_name": _device_name(self.config.device),
            "threads": torch.get_num_threads(),
            "channels_last": self.config.use_channels_last(),
            "data": data_id,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "zcscore": zcscore.__version__,
        }

    def score_archs(
        self,
        archs: Iterable[str],
        progress: bool = False,
        on_records: Callable[[list[ScoreRecord]], None] | None = None,
        space: str | Space = "nb201",
    ) -> list[ScoreRecord]:
        """Score arch strings of ``space``; returns one record per arch x requested proxy, in input order.

        Isomorphs are computed once. Population proxies (``az_nas``) are aggregated over this set.
        ``on_records`` is called after each distinct arch with its direct records (for streaming).
        Raises :class:`~zcscore.spaces.SpaceError` for an invalid arch, before anything is scored.
        """
        sp = get_space(space) if isinstance(space, str) else space
        arch_list = list(archs)
        canon_of = [sp.encode(sp.canonical(sp.parse(a))) for a in arch_list]
        classes = list(dict.fromkeys(canon_of))
        by_class: dict[str, list[ScoreRecord]] = {}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(classes), desc="scoring", unit="arch")
        for start in range(0, len(classes), self.batch):
            chunk = classes[start : start + self.batch]
            batched = self._batched_passes(sp, chunk)
            for canon in chunk:
                arch = sp.parse(canon)
                build = partial(sp.build, arch, self.config.num_classes)
                records = self.score_network(build, canon, space=sp, arch=arch, precomputed=batched.get(canon))
                by_class[canon] = records
                if on_records is not None:
                    on_records(records)
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        direct: list[ScoreRecord] = []
        for text, canon in zip(arch_list, canon_of):
            for rec in by_class[canon]:
                direct.append(_relabel(rec, text))
        return self._finish(arch_list, direct)

    def _batched_passes(self, sp: Space, canons: Sequence[str]) -> dict[str, dict[Pass, tuple[Any, float]]]:
        """Pass results computed for a group of archs at once, ``{canon: {pass: (result, seconds per arch)}}``.

        Today: the seed proxies' passes on NB201 (:mod:`zcscore.proxies.nb201_batched`: AZ-NAS, real-data
        gradients, InTrain, epsinas) with ``batch`` > 1 and the default feature/layer modules. Every other pass,
        space or setting runs one arch at a time, and so does a pass whose batched run raised (each arch then
        gets its own result or error).
        """
        if self.batch <= 1 or len(canons) < 2 or sp.name != "nb201":
            return {}
        from zcscore.proxies.nb201_batched import batched_runner

        out: dict[str, dict[Pass, tuple[Any, float]]] = {c: {} for c in canons}
        archs = [sp.parse(c) for c in canons]
        for kind, args in self.pass_args.items():
            runner = batched_runner(kind, self.config)
            if runner is None:
                continue
            self._set_threads()
            t = time.perf_counter()
            try:
                results = runner(archs, self.config, args)
                if self.config.device.startswith("cuda"):
                    torch.cuda.synchronize(torch.device(self.config.device))
            except Exception as exc:  # e.g. out of memory for a large group: the one-arch path decides per arch
                log.warning(
                    "batched %s pass failed for %d archs (%s); running it one arch at a time",
                    kind.value,
                    len(canons),
                    exc,
                )
                continue
            per_arch = (time.perf_counter() - t) / len(canons)
            for c, r in zip(canons, results):
                out[c][kind] = (r, per_arch)
        return {c: passes for c, passes in out.items() if passes}

    def score_module(self, build: Callable[[], nn.Module] | nn.Module, name: str = "module") -> list[ScoreRecord]:
        """Score any ``torch.nn.Module`` (or a zero-argument builder) with the non-population proxies."""
        builder = build if callable(build) and not isinstance(build, nn.Module) else (lambda: build)
        return self.score_network(builder, name)

    def score_network(
        self,
        build: Callable[[], nn.Module],
        name: str,
        space: Space | None = None,
        arch: Any = None,
        precomputed: dict[Pass, tuple[Any, float]] | None = None,
    ) -> list[ScoreRecord]:
        """Run every needed pass once on one network and compute the direct proxies from them.

        A network that cannot be built gives every proxy NaN with the error, like a failing pass.
        ``precomputed``: results (and seconds) of passes already run for this arch in a batched group.
        """
        precomputed = precomputed or {}
        self._set_threads()
        seed_everything(self.config.seed)
        t0 = time.perf_counter()
        try:
            net = build()
        except Exception as exc:  # an arch that cannot be built must never crash the caller
            build_error = classify(exc, default="build_error").line
            build_detail = traceback.format_exc()
            return [
                ScoreRecord(name, s.name, math.nan, 0.0, {}, self._provenance(s, name), build_error, build_detail)
                for s in self.direct
            ]
        ctx = ArchContext(net, self.config, torch.get_rng_state(), space, arch)
        build_s = time.perf_counter() - t0
        outputs = PassOutputs(ctx)
        pass_seconds: dict[Pass, float] = {}
        errors: dict[Pass, tuple[str, str]] = {}  # pass -> (error line, traceback)
        for kind in Pass:
            if kind not in self.pass_args:
                continue
            if kind in precomputed:
                outputs.results[kind], pass_seconds[kind] = precomputed[kind]
                continue
            t = time.perf_counter()
            try:
                ctx.restore()
                outputs.results[kind] = get_pass(kind)(ctx, **self.pass_args[kind])
            except Exception as exc:  # a broken network must never crash the caller
                errors[kind] = (classify(exc).line, traceback.format_exc())
            ctx.sync()
            pass_seconds[kind] = time.perf_counter() - t
        if pass_seconds:
            ctx.restore()  # leave a caller's module as it was given (weights, buffers, RNG)
        users = {k: sum(1 for s in self.direct if k in s.passes) for k in pass_seconds}
        records = []
        for spec in self.direct:
            t = time.perf_counter()
            score: float = math.nan
            components: dict[str, float] = {}
            error: str | None = None
            detail: str | None = None
            failed = [errors[k] for k in spec.passes if k in errors]
            if failed:
                error, detail = failed[0]
            else:
                try:
                    value = get_impl(spec.name)(outputs)
                    score, components = value if isinstance(value, tuple) else (value, {})
                    score = float(score)
                except Exception as exc:
                    error, detail = classify(exc).line, traceback.format_exc()
            own = time.perf_counter() - t
            shared = sum(pass_seconds[k] / users[k] for k in spec.passes if k in pass_seconds)
            seconds = own + shared + build_s / len(self.direct)
            prov = {**self._provenance(spec, name), "channels_last": ctx.channels_last}  # the layout used
            if any(k in precomputed for k in spec.passes):
                prov["batched"] = self.batch  # scored in a group of archs (equal to one-arch to ~1e-6)
            records.append(ScoreRecord(name, spec.name, score, seconds, components, prov, error, detail))
        return records

    def _provenance(self, spec: ProxySpec, canonical: str) -> dict[str, Any]:
        return {
            **self.base_provenance,
            "data": self.base_provenance["data"] if spec.needs_data else None,  # only what the score read
            "proxy_version": spec.version,
            "input_protocol": spec.input_protocol,
            "scored_as": canonical,
        }

    def _finish(self, archs: list[str], direct: list[ScoreRecord]) -> list[ScoreRecord]:
        """Add population proxies and keep only the requested ones, in (arch, proxy) order."""
        from zcscore.aggregate import population_records

        table = {(r.arch, r.proxy): r for r in direct}
        for spec in self.requested:
            if spec.population:
                for rec in population_records(spec, archs, table, self._provenance(spec, "")):
                    table[(rec.arch, rec.proxy)] = rec
        out = []
        for arch in archs:
            for spec in self.requested:
                out.append(table[(arch, spec.name)])
        return out


def _relabel(rec: ScoreRecord, arch: str) -> ScoreRecord:
    return replace(rec, arch=arch)


def _device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def score(archs: Iterable[str], proxies: Sequence[str], space: str = "nb201", **config: Any) -> list[ScoreRecord]:
    """Score archs in one call: ``score(["|nor_conv_3x3~0|+...|"], ["zico", "az_nas"], seed=1)``."""
    return Engine(proxies, ScoreConfig(**config)).score_archs(archs, space=space)


def score_module(model: nn.Module, proxies: Sequence[str], **config: Any) -> list[ScoreRecord]:
    """Score any ``torch.nn.Module`` in one call: ``score_module(my_net, ["zico", "params"])``."""
    return Engine(proxies, ScoreConfig(**config)).score_module(model)
