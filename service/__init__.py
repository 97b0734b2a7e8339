"""zcscore: faithful zero-cost NAS proxies, a pass-sharing engine, and a scoring service.

``import zcscore`` stays light (no torch): the public names below load their modules on first use, so
``zcscore.api`` and ``zcscore.storage`` never pull in torch::

    import zcscore
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    records = zcscore.score([arch], ["az_nas", "zico"], seed=1)
    records = zcscore.score_module(my_model, ["zico", "params"])
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("zcscore")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_LAZY = {
    "score": "zcscore.engine",
    "score_module": "zcscore.engine",
    "Engine": "zcscore.engine",
    "ScoreConfig": "zcscore.engine",
    "ScoreRecord": "zcscore.records",
    "list_proxies": "zcscore.proxies.catalog",
    "get_space": "zcscore.spaces",
    "list_spaces": "zcscore.spaces",
    "register_space": "zcscore.spaces",
    "Client": "zcscore.client",
    "AsyncClient": "zcscore.client",
    "ApiError": "zcscore.client",
}

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "Engine",
    "ScoreConfig",
    "ScoreRecord",
    "__version__",
    "get_space",
    "list_proxies",
    "list_spaces",
    "register_space",
    "score",
    "score_module",
]

if TYPE_CHECKING:
    from zcscore.engine import Engine, ScoreConfig, score, score_module
    from zcscore.proxies.catalog import list_proxies
    from zcscore.records import ScoreRecord
    from zcscore.spaces import get_space, list_spaces, register_space


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zcscore' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
