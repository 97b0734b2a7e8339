"""Scorers: what a search asks to score archs, in process (:class:`EngineScorer`) or through the service
(:class:`ServiceScorer`), with the same fitness rules.

A scorer computes the per-arch proxies behind the search proxy (a population proxy or ensemble is replaced by
its components, as :func:`zcscore.proxies.catalog.expand` does), keeps every distinct arch it scored, and turns
them into fitness: a direct proxy's score as is (NaN as ``-inf``, lower-is-better negated); a population
proxy's (``az_nas``, ``ensemble:a+b``) rank aggregate **over everything scored so far** (AZ-NAS Algorithm 1,
line 6), or over a set the caller names (a pruning round). Archs are counted by canonical class: an isomorph of
an arch already scored costs nothing and is not counted again.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from zcscore.proxies.catalog import ProxySpec, expand, get_spec
from zcscore.spaces import Space, get_space


class Scorer(Protocol):
    """Scores archs of one space with one search proxy and gives their fitness (higher is better)."""

    space: Space
    proxy: str

    def score(self, archs: Sequence[str]) -> list[float]:
        """Score ``archs`` (what is new), then their fitness relative to everything scored so far."""
        ...

    def fitness(self, archs: Sequence[str], among: Sequence[str] | None = None) -> list[float]:
        """Fitness of archs already scored; population proxies ranked over ``among`` (default: all scored)."""
        ...

    @property
    def scored(self) -> list[str]:
        """Distinct archs scored, in order (the search's trace)."""
        ...

    @property
    def stats(self) -> dict[str, Any]:
        """``archs`` (distinct, by canonical class), ``proxy_calls``, ``computed``, ``cached``, ``seconds``."""
        ...


def _direct_value(value: float, spec: ProxySpec) -> float:
    """A per-arch score as a fitness: NaN as -inf, lower-is-better negated."""
    if math.isnan(value):
        return -math.inf
    return value if spec.higher_is_better else -value


class BaseScorer(ABC):
    """History, counting and fitness shared by every scorer; subclasses compute component scores."""

    def __init__(self, proxy: str, space: Space | str = "nb201") -> None:
        self.proxy = proxy
        self.spec = get_spec(proxy)
        self.space = get_space(space) if isinstance(space, str) else space
        if reason := self.space.unsupported(proxy):
            raise ValueError(f"{proxy!r} cannot score space {self.space.name}: {reason}")
        self.components = [s.name for s in expand([proxy])]
        self._values: dict[str, dict[str, float]] = {}  # canonical -> component -> score
        self._canon: dict[str, str] = {}  # arch text -> canonical
        self._order: list[str] = []  # distinct arch texts as first scored
        self._cache_fit: tuple[int, dict[str, float]] | None = None
        self.proxy_calls = 0
        self.computed = 0
        self.seconds = 0.0

    def canonical(self, arch: str) -> str:
        if arch not in self._canon:
            sp = self.space
            self._canon[arch] = sp.encode(sp.canonical(sp.parse(arch)))
        return self._canon[arch]

    def is_scored(self, arch: str) -> bool:
        return self.canonical(arch) in self._values

    @property
    def scored(self) -> list[str]:
        return list(self._order)

    @property
    def stats(self) -> dict[str, Any]:
        return {
            "archs": len(self._values),
            "proxy_calls": self.proxy_calls,
            "computed": self.computed,
            "cached": self.proxy_calls - self.computed,
            "seconds": round(self.seconds, 3),
        }

    def score(self, archs: Sequence[str]) -> list[float]:
        new: dict[str, str] = {}
        for arch in archs:
            canon = self.canonical(arch)
            if canon not in self._values and canon not in new.values():
                new[arch] = canon
        if new:
            t0 = time.perf_counter()
            values = self._compute(list(new.values()))
            self.seconds += time.perf_counter() - t0
            for arch, canon in new.items():
                self._values[canon] = values[canon]
                self._order.append(arch)
            self.proxy_calls += len(new)
            self._cache_fit = None
        return self.fitness(archs)

    def fitness(self, archs: Sequence[str], among: Sequence[str] | None = None) -> list[float]:
        if not self.spec.population:
            return [_direct_value(self._values[self.canonical(a)][self.proxy], self.spec) for a in archs]
        table = self._population(among)
        return [table[self.canonical(a)] for a in archs]

    def _population(self, among: Sequence[str] | None) -> dict[str, float]:
        from zcscore.aggregate import aggregate

        if among is None and self._cache_fit is not None and self._cache_fit[0] == len(self._values):
            return self._cache_fit[1]
        canons = list(self._values) if among is None else list(dict.fromkeys(self.canonical(a) for a in among))
        columns = {c: [self._values[k][c] for k in canons] for c in self.spec.components}
        agg = np.asarray(aggregate(self.spec, columns), dtype=np.float64)
        table = {k: float(v) for k, v in zip(canons, agg)}
        if among is None:
            self._cache_fit = (len(self._values), table)
        return table

    def raw(self, arch: str) -> dict[str, float]:
        """The component scores of a scored arch."""
        return dict(self._values[self.canonical(arch)])

    @abstractmethod
    def _compute(self, canonicals: list[str]) -> dict[str, dict[str, float]]:
        """Component scores of new canonical archs: ``{canonical: {component: score}}``."""

    def close(self) -> None:  # noqa: B027 (optional hook: most scorers hold nothing)
        """Release what the scorer holds (a cache file, a client)."""


class ScoreCache:
    """A persistent score cache in one SQLite file, shared by in-process searches (any number of runs).

    Key: sha256 of (space, canonical arch, proxy, proxy version, seed, head width, numerics, image digest for
    data proxies): the same fields as the service's cache key, so a hit is the score the engine would compute.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=60)
        self._db.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, score REAL, kind TEXT)")
        self._db.commit()

    @staticmethod
    def key(space: str, canonical: str, spec: ProxySpec, config: dict[str, Any]) -> str:
        parts = {"space": space, "arch": canonical, "proxy": spec.name, "version": spec.version, **config}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def get(self, keys: Sequence[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for i in range(0, len(keys), 500):
            chunk = list(keys[i : i + 500])
            marks = ",".join("?" * len(chunk))
            for key, score, kind in self._db.execute(
                f"SELECT key, score, kind FROM scores WHERE key IN ({marks})", chunk
            ):
                out[key] = float(score) if kind == "finite" else {"nan": math.nan, "inf": math.inf}.get(kind, -math.inf)
        return out

    def put(self, items: dict[str, float]) -> None:
        rows = []
        for key, value in items.items():
            kind = "nan" if math.isnan(value) else "inf" if value == math.inf else "-inf" if value == -math.inf else ""
            rows.append((key, None if kind else float(value), kind or "finite"))
        self._db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?)", rows)
        self._db.commit()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def close(self) -> None:
        self._db.close()


class EngineScorer(BaseScorer):
    """Scores in this process with :class:`zcscore.engine.Engine`; ``cache`` (a path) persists scores across runs.

    A failed score (the engine's error) is NaN, i.e. the worst fitness, and is never cached.
    """

    def __init__(
        self, proxy: str, space: Space | str = "nb201", cache: str | Path | None = None, **config: Any
    ) -> None:
        super().__init__(proxy, space)
        from zcscore.engine import Engine, ScoreConfig

        self.engine = Engine(self.components, ScoreConfig(**config))
        self._engines: dict[tuple[str, ...], Any] = {tuple(self.components): self.engine}
        self.cache = ScoreCache(cache) if cache is not None else None
        self._key_config: dict[str, dict[str, Any]] = {}

    def _keys(self, canonical: str) -> dict[str, str]:
        cfg = self.engine.config
        out = {}
        for name in self.components:
            spec = get_spec(name)
            if name not in self._key_config:
                kc: dict[str, Any] = {"seed": cfg.seed, "num_classes": cfg.num_classes}
                if spec.needs_network_pass:
                    kc["numerics"] = cfg.numerics.key()
                if spec.needs_data:
                    kc["data"] = cfg.real_data().source_id
                self._key_config[name] = kc
            out[name] = ScoreCache.key(self.space.name, canonical, spec, self._key_config[name])
        return out

    def _engine(self, components: tuple[str, ...]) -> Any:
        """The engine for a subset of the components (scores do not depend on which others run with them)."""
        from zcscore.engine import Engine

        if components not in self._engines:
            self._engines[components] = Engine(list(components), self.engine.config)
        return self._engines[components]

    def _compute(self, canonicals: list[str]) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {c: {} for c in canonicals}
        keys: dict[str, dict[str, str]] = {}
        missing: dict[tuple[str, ...], list[str]] = {tuple(self.components): list(canonicals)}
        if self.cache is not None:
            keys = {c: self._keys(c) for c in canonicals}
            hits = self.cache.get([k for ks in keys.values() for k in ks.values()])
            missing = {}
            for c in canonicals:
                lacking = tuple(name for name, k in keys[c].items() if k not in hits)
                out[c].update({name: hits[k] for name, k in keys[c].items() if k in hits})
                if lacking:
                    missing.setdefault(lacking, []).append(c)
        for components, todo in missing.items():
            # only what the cache lacks: an ensemble after its members computes only the new member
            records = self._engine(components).score_archs(todo, space=self.space)
            fresh: dict[str, float] = {}
            for rec in records:
                out[rec.arch][rec.proxy] = rec.score
                if self.cache is not None and rec.error is None:
                    fresh[keys[rec.arch][rec.proxy]] = rec.score
            if self.cache is not None:
                self.cache.put(fresh)
            self.computed += len(todo)
        return out

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()


class ServiceScorer(BaseScorer):
    """Scores through a running service with :class:`zcscore.Client`: submit, wait, read the scores.

    The job asks for the per-arch components (never the population proxy itself), so the fitness is aggregated
    here exactly as in process. ``jobs`` records each job's id and whether the store answered it completely at
    submission (``cached``: nothing new was computed for it).
    """

    def __init__(
        self,
        proxy: str,
        space: Space | str = "nb201",
        client: Any = None,
        url: str | None = None,
        seed: int = 1,
        num_classes: int | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(proxy, space)
        if client is None:
            from zcscore.client import DEFAULT_URL, Client

            client = Client(url or DEFAULT_URL)
            self._own = True
        else:
            self._own = False
        self.client = client
        self.seed = seed
        self.num_classes = num_classes
        self.timeout = timeout
        self.jobs: list[dict[str, Any]] = []

    def _compute(self, canonicals: list[str]) -> dict[str, dict[str, float]]:
        options: dict[str, Any] = {"space": self.space.name, "seed": self.seed}
        if self.num_classes is not None:
            options["num_classes"] = self.num_classes
        accepted = self._submit(canonicals, options)
        job = str(accepted["id"])
        status = self.client.wait(job, timeout=self.timeout, poll_s=5.0)
        if status["status"] != "done":
            raise RuntimeError(f"job {job} ended {status['status']}: {status}")
        cached = accepted["status"] == "done"  # the store answered every task at submission
        self.jobs.append({"id": job, "tasks": status["total"], "cached": cached})
        if not cached:
            self.computed += len(canonicals)
        out: dict[str, dict[str, float]] = {}
        for rec in self.client.scores(job):
            out.setdefault(rec.arch, {})[rec.proxy] = rec.score if rec.error is None else math.nan
        return out

    def _submit(self, archs: list[str], options: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/jobs``'s answer (``id``, ``status`` at submission, ``total``)."""
        from dataclasses import replace

        from zcscore.client import Client, _Calls

        if isinstance(self.client, Client):
            call = replace(_Calls.submit(archs, self.components, **options), parse=lambda r: r.json())
            answer: dict[str, Any] = self.client._run(call)
            return answer
        job = self.client.submit(archs, self.components, **options)
        return dict(self.client.status(job))

    def close(self) -> None:
        if self._own:
            self.client.close()


class FunctionScorer(BaseScorer):
    """Scores with a plain function ``archs -> scores`` standing in for the direct proxy ``proxy`` (tests, toys)."""

    def __init__(self, fn: Any, space: Space | str = "nb201", proxy: str = "params") -> None:
        super().__init__(proxy, space)
        if self.spec.population:
            raise ValueError("a FunctionScorer stands in for one direct proxy")
        self.fn = fn

    def _compute(self, canonicals: list[str]) -> dict[str, dict[str, float]]:
        self.computed += len(canonicals)
        return {c: {self.proxy: float(v)} for c, v in zip(canonicals, self.fn(canonicals))}
