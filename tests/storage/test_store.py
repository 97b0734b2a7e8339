"""Store contract on SQLite and Postgres: unique cache key, idempotent inserts, derived job progress."""

from __future__ import annotations

import math

import pytest

from zcscore.numerics import Numerics
from zcscore.proxies.catalog import get_spec
from zcscore.storage.keys import (
    cache_key_for,
    config_hash,
    decode_score,
    encode_score,
    job_config,
    json_score,
    proxy_config,
)
from zcscore.storage.migrate import check_at_head, head_revision
from zcscore.storage.store import IdempotencyConflict, NewJob, TaskRow, make_engine, open_store

CFG = job_config(0, 10, Numerics.resolve())
CFG_HASH = config_hash(CFG)


def score_row(key: str, proxy: str, value: float, arch: str = "a") -> dict:
    v, kind = encode_score(value)
    return {
        "cache_key": key,
        "space": "nb201",
        "arch": arch,
        "arch_hash": arch * 4,
        "proxy": proxy,
        "proxy_version": 1,
        "config_hash": CFG_HASH,
        "seed": 0,
        "value": v,
        "kind": kind,
        "components": {"x": 1.0},
        "provenance": {"seed": 0, "device": "cpu", "torch": "t"},
        "seconds": 0.1,
    }


def new_job(keys: list[str], idem: str | None = None, body: str = "b") -> NewJob:
    tasks = [TaskRow(i, f"arch{i}", f"arch{i}", f"hash{i}", "params", k) for i, k in enumerate(keys)]
    return NewJob("nb201", ["params"], CFG, CFG_HASH, body, idem, tasks)


def test_proxy_config_holds_what_changes_the_numbers() -> None:
    from zcscore.engine import ScoreConfig

    engine_cfg = ScoreConfig(seed=3, num_classes=100)
    cfg = job_config(3, 100, engine_cfg.numerics, "d" * 64)
    assert cfg["numerics"] == {"device": "cpu", "channels_last": True, "threads": 1}  # the engine's defaults
    assert proxy_config(get_spec("params"), cfg) == {"seed": 3, "num_classes": 100}
    assert proxy_config(get_spec("az_expressivity"), cfg) == {
        "seed": 3,
        "num_classes": 100,
        "numerics": cfg["numerics"],
    }
    assert proxy_config(get_spec("zico"), cfg)["data"] == "d" * 64
    cuda = job_config(3, 100, Numerics.resolve("cuda:1", threads=8), None)
    assert cuda["numerics"] == {"device": "cuda", "channels_last": False, "threads": None}


def test_score_encoding_roundtrip() -> None:
    for value in (1.5, -2.0, math.inf, -math.inf):
        assert decode_score(*encode_score(value)) == value
    assert math.isnan(decode_score(*encode_score(math.nan)))
    assert [json_score(v) for v in (math.nan, math.inf, -math.inf, 2.0)] == [None, "inf", "-inf", 2.0]


def test_migrates_to_head_and_refuses_stale(db_url: str) -> None:
    with pytest.raises(RuntimeError, match=r"alembic -c \S*alembic\.ini upgrade head"):
        check_at_head(make_engine(db_url))
    store = open_store(db_url)
    check_at_head(store.engine)
    assert head_revision() is not None
    assert open_store(db_url, migrate=False).ping()


def test_insert_is_idempotent_and_unique(db_url: str) -> None:
    store = open_store(db_url)
    assert store.insert_scores([score_row("k1", "params", 1.0), score_row("k2", "flops", -math.inf)]) == 2
    assert store.insert_scores([score_row("k1", "params", 99.0), score_row("k3", "flops", math.nan)]) == 1
    assert store.existing_keys(["k1", "k2", "k3", "k4"]) == {"k1", "k2", "k3"}
    (row,) = store.lookup("nb201", "params", "aaaa")
    assert row.value == 1.0 and row.provenance["device"] == "cpu"  # first write wins


def test_top_k_in_sql_orders_inf_first_and_skips_nan(db_url: str) -> None:
    store = open_store(db_url)
    values = {"a": 1.0, "b": math.inf, "c": math.nan, "d": -math.inf, "e": 3.0}
    store.insert_scores([score_row(f"k{a}", "flops", v, a) for a, v in values.items()])
    assert [r.arch for r in store.top("nb201", "flops", 10)] == ["b", "e", "a", "d"]
    assert [r.arch for r in store.top("nb201", "flops", 2)] == ["b", "e"]
    assert len(store.export("nb201")) == 5


def test_job_progress_is_derived_from_scores_and_errors(db_url: str) -> None:
    store = open_store(db_url)
    job_id, created = store.create_job(new_job(["x1", "x2", "x3"]))
    assert created
    assert store.progress(job_id).status == "queued"
    store.insert_scores([score_row("x1", "params", 1.0)])
    prog = store.progress(job_id)
    assert (prog.done, prog.failed, prog.total, prog.status) == (1, 0, 3, "running")
    assert store.mark_failed(["x2"], "boom") == 1
    assert [t.cache_key for t in store.missing_tasks(job_id)] == ["x3"]
    store.insert_scores([score_row("x3", "params", 2.0)])
    prog = store.progress(job_id)
    assert (prog.done, prog.failed, prog.status) == (2, 1, "failed")
    assert job_id in store.unfinished_jobs()
    store.mark_finished(job_id)
    assert job_id not in store.unfinished_jobs()
    rows = store.job_rows(job_id)
    assert [(t.position, sc is not None, t.error) for t, sc in rows] == [
        (0, True, None),
        (1, False, "boom"),
        (2, True, None),
    ]
    assert store.progress("nope") is None


def test_idempotency_key(db_url: str) -> None:
    store = open_store(db_url)
    first, created = store.create_job(new_job(["y1"], idem="key-1"))
    again, created_again = store.create_job(new_job(["y1"], idem="key-1"))
    assert created and not created_again and first == again
    with pytest.raises(IdempotencyConflict):
        store.create_job(new_job(["y2"], idem="key-1", body="other"))


def test_cache_key_depends_on_every_part() -> None:
    base = cache_key_for("h", "zico", 1, CFG_HASH)
    assert base != cache_key_for("h2", "zico", 1, CFG_HASH)
    assert base != cache_key_for("h", "zico", 2, CFG_HASH)
    assert base != cache_key_for("h", "zico", 1, config_hash(job_config(1, 10, Numerics.resolve())))
