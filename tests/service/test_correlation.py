"""A small correlation check: every seed proxy ranks a fixed sample of 30 NB201 archs clearly positively.

The full figures (1,000+ archs, all datasets) are in ``zcscore bench`` / ``docs/benchmarks.md``; this only
guards against a proxy whose ranking silently broke (sign flip, constant output, wrong input).
"""

from __future__ import annotations

import pytest
from proxykit import SEED_PROXIES

from zcscore.bench.metrics import policy_for, rank_correlation
from zcscore.bench.truth import accuracies


@pytest.fixture(scope="module")
def scored(seed_sample, data_dir):
    archs, table = seed_sample  # scored one arch at a time (tests/service/conftest.py)
    by_proxy: dict[str, list[float]] = {p: [] for p in SEED_PROXIES}
    for arch in archs:
        for p in SEED_PROXIES:
            rec = table[(arch, p)]
            assert rec.error is None, (rec.arch, rec.proxy, rec.error)
            by_proxy[p].append(rec.score)
    return by_proxy, accuracies(archs, "cifar10_test", data_dir)


@pytest.mark.parametrize("proxy", SEED_PROXIES)
def test_kendall_tau_is_clearly_positive(scored, proxy):
    by_proxy, acc = scored
    corr = rank_correlation(by_proxy[proxy], acc, policy_for(proxy))
    assert corr.n >= 10  # epsinas: NaN archs are excluded, as its paper does (17 of these 30)
    assert corr.kendall > 0.25, f"{proxy}: tau {corr.kendall:.3f} over {corr.n} archs"
