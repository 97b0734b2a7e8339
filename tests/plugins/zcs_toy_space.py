"""A toy search space registered only through the Space interface (a plugin, as a lab would write one).

Archs are chains of ops joined by ``-``: ``c1``/``c3``/``c5`` (ReLU-conv-BN, k x k), ``p`` (3x3 average
pool), ``s`` (identity). Identities change nothing, so ``c3-s-c1`` and ``c3-c1`` are isomorphs and share
one canonical form. For the fault tests only: ``wait<ms>`` sleeps that long when the network is built,
``stall`` hangs (an arch that runs too long), ``big64`` raises on 64x64 inputs (so InTrain, whose input is
64x64, fails for that arch while every other proxy works), and when ``ZCS_TOY_TALLY`` names a file every
build appends its arch to it (tests count attempts).

Load it with ``ZCSCORE_PLUGINS='["zcs_toy_space"]'`` and this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from zcscore.spaces import Space, SpaceError, register_space

OPS = ("c1", "c3", "c5", "p", "s")
WIDTH = 8


class ToySpace(Space):
    """Chains of up to 12 ops on 8 channels at 16x16, a GAP + linear head."""

    name = "toy"
    description = "toy chains of conv/pool/skip ops (test plugin)"
    example = "c3-p-c1"
    max_arch_length = 200
    input_shape = (3, 16, 16)

    def parse(self, text: str) -> tuple[str, ...]:
        if not isinstance(text, str) or not text.strip():
            raise SpaceError("arch is empty", field="arch")
        ops = tuple(t.strip().lower() for t in text.split("-"))
        for i, op in enumerate(ops):
            if op not in (*OPS, "stall", "big64") and not (op.startswith("wait") and op[4:].isdigit()):
                raise SpaceError(f"unknown op {op!r} at position {i} (ops: {', '.join(OPS)})", field=f"ops[{i}]")
        if len(ops) > 12:
            raise SpaceError(f"at most 12 ops, got {len(ops)}", field="ops")
        return ops

    def encode(self, arch: Any) -> str:
        return "-".join(arch)

    def canonical(self, arch: Any) -> tuple[str, ...]:
        kept = tuple(op for op in arch if op != "s")
        return kept or ("s",)

    def build(self, arch: Any, num_classes: int = 10) -> Any:
        from torch import nn

        tally = os.environ.get("ZCS_TOY_TALLY")
        if tally:
            with open(tally, "a") as fh:
                fh.write(self.encode(arch) + "\n")
        layers: list[nn.Module] = [nn.Conv2d(3, WIDTH, 3, padding=1, bias=False), nn.BatchNorm2d(WIDTH)]
        for op in arch:
            if op == "big64":
                layers.append(Refuse64())
            elif op == "stall":
                time.sleep(3600)
            elif op.startswith("wait"):
                time.sleep(int(op[4:]) / 1000)
            elif op == "p":
                layers.append(nn.AvgPool2d(3, stride=1, padding=1))
            elif op.startswith("c"):
                k = int(op[1])
                layers.append(
                    nn.Sequential(
                        nn.ReLU(), nn.Conv2d(WIDTH, WIDTH, k, padding=k // 2, bias=False), nn.BatchNorm2d(WIDTH)
                    )
                )
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(WIDTH, num_classes)]
        return nn.Sequential(*layers)

    def sample(self, rng: random.Random) -> tuple[str, ...]:
        return tuple(rng.choice(OPS) for _ in range(rng.randint(1, 6)))

    def mutate(self, arch: Any, rng: random.Random) -> tuple[str, ...]:
        ops = list(arch)
        i = rng.randrange(len(ops))
        ops[i] = rng.choice([o for o in OPS if o != ops[i]])
        return tuple(ops)

    def unsupported(self, proxy: str) -> str | None:
        if proxy == "epsinas":
            return "the toy head is not the official 1-unit classifier"
        return None


def _refuse64() -> Any:
    from torch import nn

    class Refuse64Module(nn.Module):
        """Identity, except that it raises on 64x64 inputs."""

        def forward(self, x: Any) -> Any:
            if x.shape[-1] == 64:
                raise RuntimeError("toy op big64 refuses 64x64 inputs")
            return x

    return Refuse64Module()


def Refuse64() -> Any:
    """A module that is the identity except on 64x64 inputs, where it raises."""
    return _refuse64()


register_space(ToySpace())


def chain(i: int, prefix: str = "") -> str:
    """A distinct canonical toy arch per integer ``i`` (base-4 digits over c1/c3/c5/p), optionally prefixed."""
    digits = []
    for _ in range(6):
        digits.append(("c1", "c3", "c5", "p")[i % 4])
        i //= 4
    return "-".join([prefix, *digits] if prefix else digits)
