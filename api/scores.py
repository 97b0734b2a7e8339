"""Read routes over the store: lookup, top-k (in SQL) and export."""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from zcscore.aggregate import population_records
from zcscore.api.auth import current_user
from zcscore.api.deps import ServicesDep
from zcscore.api.errors import field_error
from zcscore.api.schemas import PopulationScores, ScoreItem, StoredScore, StoredScores
from zcscore.commands.score import format_score
from zcscore.proxies.catalog import ProxySpec, get_spec
from zcscore.records import ScoreRecord
from zcscore.spaces import Space, SpaceError, get_space
from zcscore.storage.keys import decode_score, json_components, json_score
from zcscore.storage.models import Score

router = APIRouter(prefix="/v1", tags=["scores"], dependencies=[Depends(current_user)])  # any user reads the cache


def stored_proxy(name: str) -> ProxySpec:
    """The spec of a proxy whose scores are stored (population proxies are per job); 422 otherwise."""
    try:
        spec = get_spec(name)
    except KeyError as exc:
        raise field_error(["query", "proxy"], str(exc).strip("\"'")) from None
    if spec.population:
        raise field_error(["query", "proxy"], f"{name!r} is a population proxy: read it from a job's scores")
    return spec


def known_space(name: str) -> Space:
    """The registered space ``name``; 422 naming ``space`` otherwise."""
    try:
        return get_space(name)
    except KeyError as exc:
        raise field_error(["query", "space"], str(exc).strip("\"'")) from None


def stored(sc: Score) -> StoredScore:
    """API view of a stored score."""
    return StoredScore(
        arch=sc.arch,
        proxy=sc.proxy,
        proxy_version=sc.proxy_version,
        seed=sc.seed,
        config_hash=sc.config_hash,
        score=json_score(decode_score(sc.value, sc.kind)),
        components=sc.components,
        provenance=sc.provenance,
        seconds=sc.seconds,
    )


@router.get("/scores")
def lookup(
    services: ServicesDep,
    proxy: Annotated[str, Query(max_length=64)],
    arch: Annotated[str, Query(max_length=4000)],
    space: Annotated[str, Query(max_length=64)] = "nb201",
) -> StoredScores:
    """Stored scores of one arch (any isomorph) and proxy, over every seed/config."""
    sp = known_space(space)
    stored_proxy(proxy)
    try:
        arch_hash = sp.canonical_hash(sp.parse(arch))
    except SpaceError as exc:
        raise field_error(["query", "arch"], str(exc)) from None
    return StoredScores(items=[stored(s) for s in services.store.lookup(space, proxy, arch_hash)])


@router.get("/top")
def top(
    services: ServicesDep,
    proxy: Annotated[str, Query(max_length=64)],
    space: Annotated[str, Query(max_length=64)] = "nb201",
    k: Annotated[int, Query(ge=1, le=1000)] = 10,
    seed: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
) -> StoredScores:
    """The ``k`` best stored archs of a proxy (ordered in SQL; +inf first, NaN excluded)."""
    known_space(space)
    spec = stored_proxy(proxy)
    rows = services.store.top(space, proxy, k, seed, descending=spec.higher_is_better)
    return StoredScores(items=[stored(s) for s in rows])


@router.get("/population")
def population(
    services: ServicesDep,
    proxy: Annotated[str, Query(max_length=512, examples=["ensemble:az_nas+synflow"])],
    space: Annotated[str, Query(max_length=64)] = "nb201",
    seed: Annotated[int, Query(ge=0, le=2**31 - 1)] = 1,
    k: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> PopulationScores:
    """A population proxy over every stored arch of ``space`` that has all its components under ``seed``.

    Each (arch, component) takes its first stored score (lowest id) when several configs hold one; archs whose
    components failed are left out. Items are ordered best first; ``k`` keeps the best ``k``.
    """
    known_space(space)
    try:
        spec = get_spec(proxy)
    except KeyError as exc:
        raise field_error(["query", "proxy"], str(exc).strip("\"'")) from None
    if not spec.population:
        raise field_error(["query", "proxy"], f"{proxy!r} is not a population proxy: use /v1/top or /v1/export")
    table: dict[tuple[str, str], ScoreRecord] = {}
    arch_of: dict[str, str] = {}
    for sc in services.store.component_scores(space, spec.components, seed):
        arch_of.setdefault(sc.arch_hash, sc.arch)
        key = (sc.arch_hash, sc.proxy)
        if key not in table:
            table[key] = ScoreRecord(sc.arch_hash, sc.proxy, decode_score(sc.value, sc.kind), sc.seconds or 0.0)
    archs = [h for h in arch_of if all((h, c) in table for c in spec.components)]
    prov = {"proxy_version": spec.version, "input_protocol": spec.input_protocol, "seed": seed}
    records = population_records(spec, archs, table, prov) if archs else []
    records.sort(key=lambda r: -r.score if spec.higher_is_better else r.score)
    items = [
        ScoreItem(
            arch=arch_of[r.arch],
            proxy=spec.name,
            status="done",
            score=json_score(r.score),
            components=json_components(r.components),
            provenance={**r.provenance, "arch_hash": r.arch},
            seconds=r.seconds,
        )
        for r in records[:k]
    ]
    return PopulationScores(proxy=spec.name, space=space, seed=seed, population_size=len(archs), items=items)


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}},
)
def export(
    services: ServicesDep,
    space: Annotated[str, Query(max_length=64)] = "nb201",
    format: Literal["csv", "parquet"] = "csv",
    proxy: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Every stored score of a space as CSV (scores as nan/inf/-inf text) or Parquet (IEEE floats)."""
    known_space(space)
    if proxy is not None:
        stored_proxy(proxy)
    rows = services.store.export(space, proxy)
    columns: dict[str, list[Any]] = {  # table columns for pyarrow / csv
        "arch": [r.arch for r in rows],
        "proxy": [r.proxy for r in rows],
        "proxy_version": [r.proxy_version for r in rows],
        "seed": [r.seed for r in rows],
        "config_hash": [r.config_hash for r in rows],
        "score": [decode_score(r.value, r.kind) for r in rows],
        "seconds": [r.seconds for r in rows],
        "components": [json.dumps(r.components, sort_keys=True) for r in rows],
        "provenance": [json.dumps(r.provenance, sort_keys=True) for r in rows],
    }
    if format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(pa.table(columns), buf)
        return Response(
            buf.getvalue(),
            media_type="application/vnd.apache.parquet",
            headers={"Content-Disposition": f'attachment; filename="{space}_scores.parquet"'},
        )
    columns["score"] = [format_score(v) for v in columns["score"]]
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(zip(*columns.values()))
    return Response(
        text.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{space}_scores.csv"'},
    )
