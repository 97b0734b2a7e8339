"""Service-test fixtures: one torch thread per test (the machine is shared; timings and numerics stay comparable)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run each test with one torch CPU thread, restoring the previous count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def seed_sample(data_dir):  # type: ignore[no-untyped-def]
    """The seed proxies (and AZ-NAS's parts) on the sample + edge cases, one arch at a time (~2 min, shared).

    Returns ``(sampled archs, {(arch, proxy): ScoreRecord})``; ``az_nas`` is aggregated over all 33 archs.
    """
    from proxykit import AZ_PARTS, EDGE_CASES, SAMPLE, SAMPLE_CONFIG, SEED_PROXIES

    from zcscore.bench.truth import sample_archs
    from zcscore.engine import Engine, ScoreConfig

    archs = sample_archs(SAMPLE, seed=2026, data_dir=data_dir)
    records = Engine([*SEED_PROXIES, *AZ_PARTS], ScoreConfig(**SAMPLE_CONFIG)).score_archs([*archs, *EDGE_CASES])
    return archs, {(r.arch, r.proxy): r for r in records}
