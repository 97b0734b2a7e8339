"""timm models by name: ``resnet18``, ``efficientnet_b0@192``. Needs the optional ``timm`` package.

An arch is a model name from ``timm.list_models()``, optionally followed by ``@<resolution>`` (16..1024,
default 224): the resolution only sets the input at which FLOPs are counted (:meth:`TimmSpace.input_shape_for`;
proxies draw their own inputs). A pretrained tag (``resnet18.a1_in1k``) is accepted and dropped: the
network is built with ``pretrained=False``, so the tag does not change it. The canonical encoding is
``<name>@<resolution>``, so ``resnet18`` and ``resnet18@224`` hash alike.

``build`` is ``timm.create_model(name, pretrained=False, num_classes=num_classes)``. Models that need a
fixed input size (most ViTs) fail on the proxies' 32x32 or 64x64 inputs; the engine reports that
proxy's error for the arch. Without timm (``pip install 'zcscore[timm]'``), :meth:`TimmSpace.parse`
raises a :class:`SpaceError` saying so.
"""

from __future__ import annotations

import difflib
import importlib
import random
import re
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

from zcscore.spaces.base import Space, SpaceError

if TYPE_CHECKING:
    from torch import nn

DEFAULT_RESOLUTION = 224
MIN_RESOLUTION, MAX_RESOLUTION = 16, 1024
NAME_PATTERN = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)?")
NOT_INSTALLED = "timm is not installed: pip install 'zcscore[timm]'"
SMALL_MODELS: tuple[str, ...] = (
    "resnet18",
    "resnet34",
    "resnet10t",
    "mobilenetv2_050",
    "mobilenetv2_100",
    "mobilenetv3_small_100",
    "efficientnet_b0",
    "regnetx_002",
    "lcnet_050",
)
"""What :meth:`TimmSpace.sample` and :meth:`TimmSpace.mutate` draw from (small ImageNet CNNs)."""
RESOLUTIONS: tuple[int, ...] = (160, 192, 224)


@dataclass(frozen=True)
class TimmArch:
    """A timm model name (without pretrained tag) and the input resolution."""

    model: str
    resolution: int = DEFAULT_RESOLUTION

    def encode(self) -> str:
        """``<name>@<resolution>``."""
        return f"{self.model}@{self.resolution}"


def import_timm() -> ModuleType:
    """The ``timm`` module; raises :class:`SpaceError` (field ``arch``) when it cannot be imported."""
    try:
        return importlib.import_module("timm")
    except ImportError:
        raise SpaceError(NOT_INSTALLED, field="arch") from None
    except Exception as exc:  # e.g. a torchvision that does not match the installed torch
        raise SpaceError(f"{NOT_INSTALLED} (import failed: {type(exc).__name__}: {exc})", field="arch") from None


@cache
def timm_models() -> frozenset[str]:
    """Every model name timm can create."""
    return frozenset(str(name) for name in import_timm().list_models())


def parse_timm(text: str) -> TimmArch:
    """Parse ``name[@resolution]`` and check the name against ``timm.list_models()``."""
    if not isinstance(text, str):
        raise SpaceError(f"a timm arch must be a string, got {type(text).__name__}", field="arch")
    name, sep, res = text.strip().partition("@")
    name = name.strip()
    if not name:
        raise SpaceError("arch is empty: give a timm model name such as 'resnet18'", field="arch")
    if not NAME_PATTERN.fullmatch(name):
        raise SpaceError(f"{name!r} is not a timm model name", field="arch")
    resolution = DEFAULT_RESOLUTION
    if sep:
        res = res.strip()
        if not res.isdigit() or not MIN_RESOLUTION <= int(res) <= MAX_RESOLUTION:
            raise SpaceError(
                f"resolution must be an integer in {MIN_RESOLUTION}..{MAX_RESOLUTION}, got {res!r}", field="resolution"
            )
        resolution = int(res)
    model = name.partition(".")[0]
    models = timm_models()
    if model not in models:
        close = difflib.get_close_matches(model, sorted(models), n=5, cutoff=0.6)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise SpaceError(f"unknown timm model {model!r}{hint}", field="arch")
    return TimmArch(model, resolution)


class TimmSpace(Space):
    """Any model timm can create, by name (optional extra ``zcscore[timm]``)."""

    name = "timm"
    description = "timm models by name, optionally @resolution (needs the optional timm package)"
    example = "resnet18@224"
    max_arch_length = 200
    size = None
    input_shape: tuple[int, ...] = (3, DEFAULT_RESOLUTION, DEFAULT_RESOLUTION)

    def parse(self, text: str) -> TimmArch:
        """Parse ``name[@resolution]``; :class:`SpaceError` names ``arch`` (closest names listed) or ``resolution``."""
        return parse_timm(text)

    def encode(self, arch: Any) -> str:
        """``<name>@<resolution>``."""
        return str(arch.encode())

    def input_shape_for(self, arch: Any) -> tuple[int, ...]:
        """``(3, resolution, resolution)``."""
        return (3, int(arch.resolution), int(arch.resolution))

    def build(self, arch: Any, num_classes: int = 10) -> nn.Module:
        """``timm.create_model(name, pretrained=False, num_classes=num_classes)``."""
        model: nn.Module = import_timm().create_model(arch.model, pretrained=False, num_classes=num_classes)
        return model

    def sample(self, rng: random.Random) -> TimmArch:
        """A model of :data:`SMALL_MODELS` at a resolution of :data:`RESOLUTIONS`."""
        return TimmArch(rng.choice(SMALL_MODELS), rng.choice(RESOLUTIONS))

    def mutate(self, arch: Any, rng: random.Random) -> TimmArch:
        """Another model of :data:`SMALL_MODELS` (same resolution), or another resolution (same model)."""
        if rng.random() < 0.5:
            return TimmArch(rng.choice([m for m in SMALL_MODELS if m != arch.model]), arch.resolution)
        return TimmArch(arch.model, rng.choice([r for r in RESOLUTIONS if r != arch.resolution]))
