"""Shared fixtures. The data setting: tests read benchmark tables and real images through ZCSCORE_DATA_DIR,
which defaults here (tests only) to the machine's shared data next to the checkout, ``../shared/data``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parent / "plugins"  # test plugins (the toy space) for this and child processes
sys.path.insert(0, str(PLUGINS))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGINS), os.environ.get("PYTHONPATH", "")) if p)
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "ZCSCORE_DATA_DIR" not in os.environ and SHARED.is_dir():
    os.environ["ZCSCORE_DATA_DIR"] = str(SHARED)  # subprocesses (serve, CLI, Ray) inherit it
os.environ.setdefault("ZCSCORE_DATA_DOWNLOAD", "false")  # tests never reach for the network

from zcscore.settings import get_settings  # noqa: E402


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared benchmark data (ZCSCORE_DATA_DIR, default ``../shared/data`` next to the repo)."""
    settings = get_settings()
    if settings.data_dir is None or not (settings.data_dir / "nb201.csv").exists():
        pytest.skip(f"shared data not found (ZCSCORE_DATA_DIR={settings.data_dir})")
    return settings.data_dir


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``@pytest.mark.gpu`` tests on machines without CUDA."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run on a GPU machine: pytest -m gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
