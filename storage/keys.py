"""Cache keys and score encoding, shared by the API and the workers (torch-free).

A stored score is a pure function of its key: (canonical arch hash, proxy, proxy version, config hash),
where the config is what changes that proxy's numbers: the seed and head width always; the numerics
(device kind, memory layout, CPU threads; :mod:`zcscore.numerics`) when the proxy runs the network;
the digest of the real images when it reads them; the batch size when it ran a batched pass (``batch`` > 1).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Literal

from zcscore.numerics import Numerics
from zcscore.proxies.catalog import Pass, ProxySpec

# passes the engine can run for a group of NB201 archs (Engine(batch=...); zcscore.proxies.nb201_batched.BATCHED)
BATCHED_PASSES = frozenset({Pass.AZ, Pass.REAL_GRADS, Pass.INTRAIN, Pass.EPSINAS})


def job_config(
    seed: int, num_classes: int, numerics: Numerics, data_digest: str | None = None, batch: int = 1
) -> dict[str, Any]:
    """Everything a job's scores may depend on (what travels in queue messages to the workers).

    ``batch`` > 1 (``ZCSCORE_SCORE_BATCH``) asks the actors for the batched passes, whose scores equal the
    one-arch path bitwise on CPU but only to ~1e-4 relative by contract (other backends): it is then part of
    the config (and of the keys of the proxies it changes), so a stored score stays a pure function of its key.
    """
    config = {"seed": seed, "num_classes": num_classes, "numerics": numerics.key(), "data": data_digest}
    if batch > 1:
        config["batch"] = batch
    return config


def proxy_config(spec: ProxySpec, config: dict[str, Any]) -> dict[str, Any]:
    """The part of a job config that changes ``spec``'s scores (hashed into its cache key)."""
    out: dict[str, Any] = {"seed": config["seed"], "num_classes": config["num_classes"]}
    if spec.needs_network_pass:
        out["numerics"] = config["numerics"]
    if spec.needs_data:
        out["data"] = config["data"]
    if config.get("batch", 1) > 1 and BATCHED_PASSES & set(spec.passes):
        out["batch"] = config["batch"]
    return out


def proxy_config_hash(spec: ProxySpec, config: dict[str, Any]) -> str:
    """``config_hash(proxy_config(spec, config))``."""
    return config_hash(proxy_config(spec, config))


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the sorted JSON of a score-relevant config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def cache_key_for(arch_hash: str, proxy: str, version: int, cfg_hash: str) -> str:
    """The unique key of one stored score: canonical arch, proxy, proxy version and config."""
    return hashlib.sha256(f"{arch_hash}|{proxy}|{version}|{cfg_hash}".encode()).hexdigest()


def encode_score(value: float) -> tuple[float | None, str]:
    """Split a float into a SQL-safe finite value and its kind (finite, nan, inf, -inf)."""
    if math.isnan(value):
        return None, "nan"
    if math.isinf(value):
        return None, "inf" if value > 0 else "-inf"
    return float(value), "finite"


def decode_score(value: float | None, kind: str) -> float:
    """Inverse of :func:`encode_score`."""
    if kind == "finite" and value is not None:
        return float(value)
    return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(kind, math.nan)


JsonScore = float | Literal["inf", "-inf"] | None  # a score as JSON (see :func:`json_score`)


def json_score(value: float) -> JsonScore:
    """A score as JSON: null for NaN, the strings "inf"/"-inf" for infinities, else the float."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value)


def json_components(components: dict[str, float]) -> dict[str, JsonScore]:
    """Components with every value encoded by :func:`json_score`."""
    return {k: json_score(float(v)) for k, v in components.items()}
