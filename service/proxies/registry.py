"""Binds proxy and pass implementations to the torch-free catalogue.

``@proxy("zico")`` registers the function that turns pass outputs into a score for the catalogue
entry ``zico``; ``@pass_runner(Pass.REAL_GRADS)`` registers the function that runs a shared pass. The
engine reads both; nothing else should call them directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from zcscore.proxies.catalog import Pass, ProxySpec, get_spec

if TYPE_CHECKING:  # the engine imports this module: no runtime import back
    from zcscore.engine import PassOutputs

ProxyResult = float | tuple[float, dict[str, float]]
ProxyFn = Callable[["PassOutputs"], ProxyResult]
PassFn = Callable[..., object]  # fn(ctx: ArchContext, **pass_args); each pass returns its own output type
_ProxyF = TypeVar("_ProxyF", bound=ProxyFn)
_PassF = TypeVar("_PassF", bound=PassFn)

_IMPLS: dict[str, ProxyFn] = {}
_PASSES: dict[Pass, PassFn] = {}


def proxy(name: str) -> Callable[[_ProxyF], _ProxyF]:
    """Register the implementation of catalogue proxy ``name``; returns the function unchanged.

    The function is called as ``fn(outputs)`` with a :class:`zcscore.engine.PassOutputs` and returns a
    float (or a ``(float, components_dict)`` pair).
    """
    get_spec(name)  # raises for names missing from the catalogue

    def register(fn: _ProxyF) -> _ProxyF:
        if name in _IMPLS:
            raise ValueError(f"proxy {name!r} is registered twice")
        _IMPLS[name] = fn
        return fn

    return register


def pass_runner(kind: Pass) -> Callable[[_PassF], _PassF]:
    """Register the function that runs shared pass ``kind`` as ``fn(ctx, **pass_args)``."""

    def register(fn: _PassF) -> _PassF:
        if kind in _PASSES:
            raise ValueError(f"pass {kind.value!r} is registered twice")
        _PASSES[kind] = fn
        return fn

    return register


def load_implementations() -> None:
    """Import every proxy module so that its decorators run."""
    import importlib

    from zcscore.proxies import IMPLEMENTATION_MODULES

    for module in IMPLEMENTATION_MODULES:
        importlib.import_module(f"zcscore.proxies.{module}")


def get_impl(name: str) -> ProxyFn:
    """The registered implementation of ``name``."""
    load_implementations()
    spec: ProxySpec = get_spec(name)
    if spec.population:
        raise KeyError(f"{name!r} is a population proxy: compute it with zcscore.aggregate")
    return _IMPLS[name]


def get_pass(kind: Pass) -> PassFn:
    """The registered runner of pass ``kind``."""
    load_implementations()
    return _PASSES[kind]


def registered_names() -> set[str]:
    """Names with a registered implementation (for the catalogue-completeness test)."""
    load_implementations()
    return set(_IMPLS)
