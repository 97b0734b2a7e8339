"""User-defined ensembles: any registered proxies combined by AZ-NAS's non-linear rank aggregation.

An ensemble is named ``ensemble:a+b+c``. Over a population of ``m`` archs it scores
``sum_k log(rank_k / m)`` (ranks ascending, ties averaged, NaN ranked lowest, a lower-is-better proxy negated),
where the terms ``k`` are the members; a member that is itself a log-rank aggregate (``az_nas``) contributes
its components as separate terms, so ``ensemble:az_nas+synflow`` is exactly AZ-NAS Table 5's
"Synflow + sC+sE+sT+sP". A member with another aggregation (``tenas``, ``vkdnw``) contributes one term: the
log-rank of its own population score. The name resolves to a population :class:`ProxySpec` whose components
are the per-arch proxies to compute, so ensembles flow through the engine, CLI, API and store like
``az_nas``. Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable

from zcscore.proxies.catalog import InputKind, Pass, ProxySpec

PREFIX = "ensemble:"
SEPARATOR = "+"
# published combinations (AZ-NAS, CVPR 2024, Table 5: NB201 Kendall tau C10 / C100 / IN16-120)
PUBLISHED: dict[str, str] = {
    "ensemble:az_nas+synflow": "AZ-NAS Table 5 'Synflow + sC+sE+sT+sP': tau 0.776 / 0.758 / 0.747",
    "ensemble:az_nas+zico": "AZ-NAS Table 5 'ZiCo + sC+sE+sT+sP': tau 0.773 / 0.757 / 0.747",
}


def is_ensemble(name: str) -> bool:
    """Whether ``name`` names an ensemble (``ensemble:a+b``)."""
    return name.startswith(PREFIX)


def ensemble_name(members: list[str] | tuple[str, ...]) -> str:
    """The proxy name of the ensemble of ``members``: ``ensemble:a+b+c``."""
    return PREFIX + SEPARATOR.join(members)


def members_of(name: str) -> tuple[str, ...]:
    """Member proxy names of ensemble ``name``; raises ``KeyError`` for a malformed name."""
    members = tuple(m.strip() for m in name[len(PREFIX) :].split(SEPARATOR))
    if len(members) < 2 or any(not m for m in members):
        raise KeyError(f"an ensemble needs two or more members: {PREFIX}a+b[+c...], got {name}")
    if len(set(members)) != len(members):
        raise KeyError(f"ensemble {name!r} names a member twice")
    return members


def ensemble_spec(name: str, lookup: Callable[[str], ProxySpec]) -> ProxySpec:
    """The population spec of ensemble ``name``; ``lookup`` is the catalogue's ``get_spec`` (no import cycle)."""
    members = [lookup(m) for m in members_of(name)]
    for spec in members:
        if is_ensemble(spec.name):
            raise KeyError(f"ensemble {name!r}: members cannot be ensembles ({spec.name!r})")
    components: dict[str, None] = {}
    for spec in members:
        for part in spec.components if spec.population else (spec.name,):
            components.setdefault(part, None)
    passes: frozenset[Pass] = frozenset().union(*(s.passes for s in members))
    inputs = [s.input for s in members]
    return ProxySpec(
        name,
        1,
        InputKind.REAL if InputKind.REAL in inputs else inputs[0],
        any(s.needs_grad for s in members),
        passes,
        "ensemble: sum of log(rank/m) over " + ", ".join(s.name for s in members) + " (AZ-NAS aggregation)",
        population=True,
        components=tuple(components),
        aggregation="ensemble",
    )
