"""Ensembles: the AZ-NAS aggregation over any registered proxies, from the Python API and the CLI."""

from __future__ import annotations

import csv
import math
import subprocess
import sys

import numpy as np
import pytest

from zcscore.aggregate import aggregate, log_rank_sum, rank_sum, vkdnw_aggregated, vkdnw_single
from zcscore.engine import score
from zcscore.proxies.catalog import expand, get_spec

ARCHS = (
    "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    "|skip_connect~0|+|none~0|avg_pool_3x3~1|+|avg_pool_3x3~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|",
)


def test_an_ensemble_resolves_to_a_population_spec_of_its_members_components() -> None:
    spec = get_spec("ensemble:az_nas+params")
    assert spec.population and spec.aggregation == "ensemble"
    assert spec.components == ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity", "params")
    assert [s.name for s in expand(["ensemble:az_nas+params", "params"])] == list(spec.components)
    for bad in ("ensemble:zico", "ensemble:zico+zico", "ensemble:zico+", "ensemble:zico+nope"):
        with pytest.raises(KeyError):
            get_spec(bad)


def test_ensemble_of_a_log_rank_population_flattens_it_as_az_nas_table_5() -> None:
    rng = np.random.default_rng(0)
    spec = get_spec("ensemble:az_nas+zico")
    cols = {c: rng.normal(size=9).tolist() for c in spec.components}
    cols["zico"][4] = math.nan
    assert aggregate(spec, cols) == pytest.approx(log_rank_sum([cols[c] for c in spec.components]))
    assert np.argmin(log_rank_sum([cols["zico"]])) == 4  # NaN ranks lowest


def test_te_nas_rank_sum_and_vkdnw_lexicographic_dense_rank() -> None:
    cols = {"a": [3.0, 1.0, 2.0, 2.0], "b": [0.5, 0.7, 0.1, math.nan]}
    assert rank_sum([cols["a"], cols["b"]]).tolist() == [7.0, 5.0, 4.5, 3.5]
    dims, ents = [10.0, 10.0, 5.0, 10.0], [0.2, 0.1, 0.9, 0.2]
    assert vkdnw_single([dims, ents]).tolist() == pytest.approx(np.log([3, 2, 1, 3]).tolist())  # dim first
    assert vkdnw_aggregated([dims, ents, [1.0, 2.0, 3.0, 4.0]]).tolist() == pytest.approx(
        (np.log([3, 2, 1, 3]) + np.log([1, 2, 3, 4])).tolist()
    )


def test_score_api_adds_ensemble_rows_consistent_with_its_members() -> None:
    recs = score(ARCHS, ["ensemble:az_nas+params", "az_nas", "params"], seed=1)
    by = {(r.arch, r.proxy): r for r in recs}
    cols = {c: [by[(a, "az_nas")].components.get(c, math.nan) for a in ARCHS] for c in get_spec("az_nas").components}
    cols["params"] = [by[(a, "params")].score for a in ARCHS]
    expected = log_rank_sum(list(cols.values()))
    got = [by[(a, "ensemble:az_nas+params")].score for a in ARCHS]
    assert got == pytest.approx(list(expected))
    assert by[(ARCHS[0], "ensemble:az_nas+params")].components["params"] == by[(ARCHS[0], "params")].score


def test_cli_ensemble_flag_adds_rows_named_after_the_members(tmp_path) -> None:
    out = tmp_path / "s.csv"
    cmd = [sys.executable, "-m", "zcscore.cli", "score", "--proxies", "params", "--ensemble", "params,flops"]
    done = subprocess.run([*cmd, "--arch", *ARCHS, "--out", str(out), "--no-progress"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open()))
    assert [r["proxy"] for r in rows] == ["params", "ensemble:params+flops"] * 3
    ens = [float(r["score"]) for r in rows if r["proxy"] == "ensemble:params+flops"]
    params = [float(r["score"]) for r in rows if r["proxy"] == "params"]
    assert np.argsort(ens).tolist() == np.argsort(params).tolist()  # params and flops rank NB201 archs alike
    bad = subprocess.run([*cmd[:-1], "zico", "--arch", ARCHS[0], "--out", "-"], capture_output=True, text=True)
    assert bad.returncode == 2 and "two or more members" in bad.stderr
