"""Search spaces by name: ``get_space("nb201")``. Torch-free.

Built-in spaces register here; others register with :func:`register_space` from a plugin module named
in the ``ZCSCORE_PLUGINS`` setting (or ``zcscore --plugin MODULE``), or from a ``zcscore.plugins``
entry point. Every layer (engine, API, store, queue, dispatcher) finds a space only through this registry.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points

from zcscore.spaces.base import Space, SpaceError

__all__ = ["Space", "SpaceError", "get_space", "list_spaces", "load_plugins", "register_space"]

log = logging.getLogger(__name__)
_SPACES: dict[str, Space] = {}
_LOADED: set[str] = set()


def register_space(space: Space, replace: bool = False) -> Space:
    """Register ``space`` under ``space.name``; raises on a duplicate name unless ``replace``."""
    if not space.name:
        raise ValueError("a space needs a non-empty name")
    if space.name in _SPACES and not replace and type(_SPACES[space.name]) is not type(space):
        raise ValueError(f"space {space.name!r} is registered twice")
    _SPACES[space.name] = space
    return space


def _builtins() -> None:
    if "nb201" not in _SPACES:
        from zcscore.spaces.dag import DagSpace
        from zcscore.spaces.mbv2 import MBV2Space
        from zcscore.spaces.nb101 import NB101Space
        from zcscore.spaces.nb201 import NB201Space
        from zcscore.spaces.nb201_super import NB201SuperSpace
        from zcscore.spaces.timm_space import TimmSpace

        for space in (NB201Space(), NB101Space(), MBV2Space(), DagSpace(), TimmSpace(), NB201SuperSpace()):
            register_space(space)


def load_plugins(modules: list[str] | None = None) -> None:
    """Import plugin modules (default: the ``plugins`` setting) and ``zcscore.plugins`` entry points, once each."""
    if modules is None:
        from zcscore.settings import get_settings

        modules = list(get_settings().plugins)
        for ep in entry_points(group="zcscore.plugins"):
            if ep.value not in _LOADED:
                _LOADED.add(ep.value)
                ep.load()
    for name in modules:
        if name not in _LOADED:
            importlib.import_module(name)
            _LOADED.add(name)
            log.debug("loaded plugin %s", name)


def get_space(name: str) -> Space:
    """The space registered as ``name``; raises ``KeyError`` naming the known spaces."""
    _builtins()
    if name not in _SPACES:
        load_plugins()
    try:
        return _SPACES[name]
    except KeyError:
        raise KeyError(f"unknown space {name!r} (known: {', '.join(sorted(_SPACES))})") from None


def list_spaces() -> list[Space]:
    """Every registered space (plugins loaded), by name."""
    _builtins()
    load_plugins()
    return [_SPACES[k] for k in sorted(_SPACES)]
