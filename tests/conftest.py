"""Shared fixtures: the shared data dir and single-threaded torch for stable CPU timings."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import get_settings


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared benchmark data (``../shared/data`` next to the repo unless ZCSCORE_DATA_DIR is set)."""
    path = get_settings().data_path
    if not (path / "nb201.csv").exists():
        pytest.skip(f"shared data not found at {path}")
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``@pytest.mark.gpu`` tests on machines without CUDA."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run on a GPU machine: pytest -m gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
