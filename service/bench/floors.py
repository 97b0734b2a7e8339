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

from service.proxies.catalog import Pass, get_spec
from service.spaces.nb201 import NB201Arch
from service.spaces.nb201_net import build_nb201

FloorFn = Callable[[nn.Module], None]


def _fwd_bwd(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    net.zero_grad(set_to_none=True)
    _, logits = net(x)
    F.cross_entropy(logits, y).backward()


def _passes(proxy: str) -> dict[Pass, int]:
    """The passes of ``proxy`` (population proxies: their components') with their batch counts."""
    spec = get_spec(proxy)
    specs = [get_spec(c) for c in spec.components] if spec.population else [spec]
    kinds: dict[Pass, int] = {}
    for s in specs:
        for kind in s.passes:
            kinds[kind] = max(kinds.get(kind, 0), s.pass_args.get("batches", 1))
    return kinds


def floor_passes(proxy: str, device: torch.device, data: Any, channels_last: bool = False) -> list[FloorFn]:
    """The plain passes of ``proxy``, each ``fn(net)``, with inputs in the given memory layout."""
    kinds = _passes(proxy)
    layout = torch.channels_last if channels_last else torch.contiguous_format

    def to(t: torch.Tensor) -> torch.Tensor:
        return t.to(device).contiguous(memory_format=layout) if t.dim() == 4 else t.to(device)

    gen = torch.Generator().manual_seed(0)
    fns: list[FloorFn] = []
    if Pass.AZ in kinds:
        xa = to(torch.randn(64, 3, 32, 32, generator=gen))

        def az(net: nn.Module) -> None:
            _, logits = net(xa)
            logits.sum().backward()

        fns.append(az)
    if Pass.REAL_GRADS in kinds:
        batches = [tuple(to(t) for t in data.batch(j, 64)) for j in range(kinds[Pass.REAL_GRADS])]

        def real(net: nn.Module) -> None:
            for x, y in batches:
                _fwd_bwd(net, x, y)

        fns.append(real)
    if Pass.INTRAIN in kinds:
        xi = to(torch.randn(64, 3, 64, 64, generator=gen))
        yi = torch.randint(0, 10, (64,), generator=gen).to(device)
        fns.append(lambda net: _fwd_bwd(net, xi, yi))
    if Pass.EPSINAS in kinds:
        xe = to(data.rows(0, 256)[0])

        def eps(net: nn.Module) -> None:
            with torch.inference_mode():
                net(xe)
                net(xe)

        fns.append(eps)
    return fns


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    archs: Sequence[str], proxies: Sequence[str], seed: int = 1, device: str = "cpu", threads: int | None = None
) -> list[dict[str, Any]]:
    """Median engine and floor ms per arch for each proxy over ``archs`` (first arch: warm-up only)."""
    from service.engine import Engine, ScoreConfig

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    config = ScoreConfig(seed=seed, device=device, threads=threads)
    engines = {p: Engine([p], config) for p in proxies}
    layouts = {p: config.use_channels_last() and Pass.EPSINAS not in _passes(p) for p in proxies}
    floors = {p: floor_passes(p, dev, config.real_data(), layouts[p]) for p in proxies}
    times: dict[str, tuple[list[float], list[float]]] = {p: ([], []) for p in proxies}
    for i, arch in enumerate(archs):
        for p in proxies:
            t0 = time.perf_counter()
            engines[p].score_archs([arch])
            _sync(dev)
            t1 = time.perf_counter()
            if floors[p]:
                net = build_nb201(NB201Arch.parse(arch)).to(dev).train()
                if layouts[p]:
                    net = net.to(memory_format=torch.channels_last)
                for fn in floors[p]:
                    fn(net)
                _sync(dev)
            t2 = time.perf_counter()
            if i > 0 or len(archs) == 1:
                times[p][0].append(t1 - t0)
                times[p][1].append(t2 - t1)
    rows = []
    for p in proxies:
        ms = statistics.median(times[p][0]) * 1e3
        floor = statistics.median(times[p][1]) * 1e3 if floors[p] else None
        rows.append(
            {
                "proxy": p,
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
