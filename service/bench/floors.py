"""Speed floors: what a proxy cannot avoid, run plainly, against what the engine takes for it.

For each arch and proxy, in the same process and on the same networks:

* ``ms_per_arch``: wall time of ``Engine([proxy]).score_archs([arch])`` (network built by the engine);
* ``floor_ms_per_arch``: wall time to build the same network with ``build_nb201`` and run only the passes
  the proxy's protocol needs, with inputs prepared beforehand: AZ 1 forward + 1 backward of Gaussian
  64x3x32x32; zico 2 and xi_gsnr 8 forward+backward (CE) of 64 real images; intrain 1 forward+backward at
  64x3x64x64; epsinas 2 forwards of 256 real images. Static proxies (params, flops) have no floor.

The floor uses the engine's memory layout (channels-last on CPU), except for epsinas, whose protocol runs
in NCHW (channels-last moves its scores; see its module), so a ratio compares like with like.
Both are medians over archs, after one warm-up arch. ``ratio`` = ms / floor.
"""

from __future__ import annotations

import csv
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zcscore.proxies.catalog import Pass, expand
from zcscore.spaces.nb201 import NB201Arch
from zcscore.spaces.nb201_net import build_nb201

FloorFn = Callable[[nn.Module], None]


def _fwd_bwd(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    net.zero_grad(set_to_none=True)
    _, logits = net(x)
    torch.autograd.backward(F.cross_entropy(logits, y))  # what Tensor.backward() calls (that one is untyped)


def _passes(proxies: Sequence[str]) -> dict[Pass, int]:
    """The passes of ``proxies`` (population proxies: their components') with their batch counts."""
    kinds: dict[Pass, int] = {}
    for s in expand(proxies):
        for kind in s.passes:
            kinds[kind] = max(kinds.get(kind, 0), s.pass_args.get("batches", 1))
    return kinds


def floor_passes(
    kinds: dict[Pass, int], device: torch.device, data: Any, channels_last: bool = False
) -> list[tuple[bool, FloorFn]]:
    """The plain passes for ``kinds``, each ``(channels_last, fn(net))`` with inputs in that layout."""
    fns: list[tuple[bool, FloorFn]] = []

    def to(t: torch.Tensor, cl: bool) -> torch.Tensor:
        fmt = torch.channels_last if cl else torch.contiguous_format
        return t.to(device).contiguous(memory_format=fmt) if t.dim() == 4 else t.to(device)

    gen = torch.Generator().manual_seed(0)
    cl = channels_last
    if Pass.AZ in kinds:
        xa = to(torch.randn(64, 3, 32, 32, generator=gen), cl)

        def az(net: nn.Module) -> None:
            _, logits = net(xa)
            logits.sum().backward()

        fns.append((cl, az))
    if Pass.REAL_GRADS in kinds:
        batches = [tuple(to(t, cl) for t in data.batch(j, 64)) for j in range(kinds[Pass.REAL_GRADS])]

        def real(net: nn.Module) -> None:
            for x, y in batches:
                _fwd_bwd(net, x, y)

        fns.append((cl, real))
    if Pass.INTRAIN in kinds:
        xi = to(torch.randn(64, 3, 64, 64, generator=gen), cl)
        yi = torch.randint(0, 10, (64,), generator=gen).to(device)
        fns.append((cl, lambda net: _fwd_bwd(net, xi, yi)))
    if Pass.EPSINAS in kinds:  # its protocol runs in NCHW (channels-last moves its scores)
        xe = to(data.rows(0, 256)[0], False)

        def eps(net: nn.Module) -> None:
            with torch.inference_mode():
                net(xe)
                net(xe)

        fns.append((False, eps))
    return fns


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run_floor(arch: str, fns: list[tuple[bool, FloorFn]], dev: torch.device) -> None:
    """Build the network (once per layout needed) and run the plain passes."""
    nets: dict[bool, nn.Module] = {}
    for cl, fn in fns:
        if cl not in nets:
            net = build_nb201(NB201Arch.parse(arch)).to(dev).train()
            nets[cl] = net.to(memory_format=torch.channels_last) if cl else net  # type: ignore[call-overload]
        fn(nets[cl])


def measure(
    archs: Sequence[str], proxies: Sequence[str], seed: int = 1, device: str = "cpu", threads: int = 1
) -> list[dict[str, Any]]:
    """Median engine and floor ms per arch for each proxy over ``archs`` (first arch: warm-up only).

    With several proxies a last row ``all`` times them scored together against the union of their
    distinct passes, which is what pass sharing should approach.
    """
    from zcscore.engine import Engine, ScoreConfig

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    config = ScoreConfig(seed=seed, device=device, threads=threads)
    groups = {p: [p] for p in proxies}
    if len(proxies) > 1:
        groups["all"] = list(proxies)
    engines = {g: Engine(members, config) for g, members in groups.items()}
    floors = {
        g: floor_passes(_passes(m), dev, config.real_data(), config.use_channels_last()) for g, m in groups.items()
    }
    times: dict[str, tuple[list[float], list[float]]] = {g: ([], []) for g in groups}
    for i, arch in enumerate(archs):
        for g in groups:
            t0 = time.perf_counter()
            engines[g].score_archs([arch])
            _sync(dev)
            t1 = time.perf_counter()
            if floors[g]:
                _run_floor(arch, floors[g], dev)
                _sync(dev)
            t2 = time.perf_counter()
            if i > 0 or len(archs) == 1:
                times[g][0].append(t1 - t0)
                times[g][1].append(t2 - t1)
    rows = []
    for g in groups:
        ms = statistics.median(times[g][0]) * 1e3
        floor = statistics.median(times[g][1]) * 1e3 if floors[g] else None
        rows.append(
            {
                "proxy": g,
                "ms_per_arch": f"{ms:.2f}",
                "floor_ms_per_arch": "" if floor is None else f"{floor:.2f}",
                "ratio": "" if floor is None else f"{ms / floor:.2f}",
            }
        )
    return rows


def write_speed(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``speed.csv`` (proxy, ms_per_arch, floor_ms_per_arch, ratio)."""
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["proxy", "ms_per_arch", "floor_ms_per_arch", "ratio"])
        writer.writeheader()
        writer.writerows(rows)
