"""The Space interface: what every search space gives the engine, the API, the store and the queue.

A space is torch-free except for :meth:`Space.build`, so the API can validate, canonicalise and hash
archs without importing torch. Archs travel between layers as their canonical string encoding; each
layer parses a string once.
"""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn


class SpaceError(ValueError):
    """An arch that is not valid in its space; ``field`` names the bad token or field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Space(ABC):
    """A search space: parse/validate, canonical form and hash, build, costs, sample and mutate.

    Contract: ``parse`` raises :class:`SpaceError` for anything invalid, naming the bad token or field;
    ``encode(parse(s))`` is a valid input of ``parse``; isomorphic archs have equal ``canonical`` forms
    and therefore equal :meth:`canonical_hash`; ``build`` returns a fresh ``torch.nn.Module`` whose
    default initialisation depends only on the torch RNG state (the engine seeds before building).
    """

    name: str = ""
    description: str = ""
    example: str = ""
    max_arch_length: int = 10_000  # longest arch text accepted at the API
    size: int | None = None  # number of distinct archs, when finite and known
    input_shape: tuple[int, ...] = (3, 32, 32)  # one input image (C, H, W)
    # epsinas' two constant weights: the official constants are per benchmark (paper Table 9)
    epsinas_weights: tuple[float, float] = (1e-7, 1.0)

    @abstractmethod
    def parse(self, text: str) -> Any:
        """Parse and validate an arch string; raises :class:`SpaceError`."""

    @abstractmethod
    def encode(self, arch: Any) -> str:
        """The string form of a parsed arch (accepted by :meth:`parse`)."""

    def canonical(self, arch: Any) -> Any:
        """The representative of ``arch``'s isomorphism class (itself when the space has no isomorphs)."""
        return arch

    def canonical_hash(self, arch: Any) -> str:
        """Stable hex key shared by all isomorphs: sha256 of ``"<space>:<canonical encoding>"``."""
        return hashlib.sha256(f"{self.name}:{self.encode(self.canonical(arch))}".encode()).hexdigest()

    @abstractmethod
    def build(self, arch: Any, num_classes: int = 10) -> nn.Module:
        """A freshly initialised network for ``arch`` with ``num_classes`` outputs (imports torch)."""

    def input_shape_for(self, arch: Any) -> tuple[int, ...]:
        """The (C, H, W) input of ``arch`` (the space's fixed input unless the arch chooses its own)."""
        return self.input_shape

    def flops_m(self, arch: Any, num_classes: int = 10) -> float | None:
        """FLOPs (M) of one input in closed form, or None to count them from the built network."""
        return None

    @abstractmethod
    def sample(self, rng: random.Random) -> Any:
        """A random arch drawn with ``rng``."""

    @abstractmethod
    def mutate(self, arch: Any, rng: random.Random) -> Any:
        """A neighbour of ``arch`` (one local change) drawn with ``rng``."""

    def unsupported(self, proxy: str) -> str | None:
        """Why ``proxy`` cannot score archs of this space, or None when it can."""
        return None
