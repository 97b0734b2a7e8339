"""Time the AZ-NAS pass against a plain forward+backward of the same NB201 net and batch (64x3x32x32).

Run: ``python benchmarks/az_nas_speed.py --archs 10 --device cpu --threads 1``. Each arch is seeded and built
as the engine does; the pass and the baseline are timed in both memory layouts (best of ``--reps``).
``--compare-cpu`` (with ``--device cuda``) also scores each arch on the CPU and prints the largest
relative difference per sub-score (the random draws are the same on both devices).
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from service.proxies.az_nas import az_scores
from service.settings import get_settings
from service.spaces.nb201 import NB201Arch
from service.spaces.nb201_net import build_nb201

REFERENCE = get_settings().data_path / "nb201_reference_official.csv"
AZ = ("expressivity", "progressivity", "trainability")


def canonical_archs(path: Path, n: int) -> list[str]:
    """The first ``n`` canonical archs of the official reference file."""
    with open(path) as fh:
        archs = [r["arch"] for r in csv.DictReader(fh)]
    return [a for a in archs if NB201Arch.parse(a).canonical().to_str() == a][:n]


def fresh_net(arch: str, device: torch.device, channels_last: bool) -> torch.nn.Module:
    """Seed 1 then build, as the engine does before every pass."""
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    net = build_nb201(arch).to(device)
    return net.to(memory_format=torch.channels_last) if channels_last else net


def timed(fn: Callable[[], object], device: torch.device, reps: int) -> float:
    """Best wall time of ``fn`` over ``reps`` runs (synchronised on CUDA)."""
    best = math.inf
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t)
    return best


def plain_fwd_bwd(net: torch.nn.Module, device: torch.device, channels_last: bool) -> None:
    """One train-mode forward and a full backward (weight grads included) of a N(0,1) batch of 64."""
    x = torch.randn(64, 3, 32, 32).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    _, logits = net(x)
    logits.sum().backward()
    net.zero_grad(set_to_none=True)


def main() -> None:
    """Print one row per arch and layout, then the means."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--reference", type=Path, default=REFERENCE)
    ap.add_argument("--compare-cpu", action="store_true")
    ap.add_argument("--no-tf32", action="store_true", help="full float32 cuDNN convolutions")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.no_tf32:
        torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)
    rows: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    worst = dict.fromkeys(AZ, 0.0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device={device} ({name}) threads={args.threads} tf32={not args.no_tf32} torch={torch.__version__}")
    print("arch | channels_last | az pass ms | plain fwd+bwd ms | ratio")
    for arch in canonical_archs(args.reference, args.archs):
        for cl in (False, True):
            net = fresh_net(arch, device, cl)
            scores = az_scores(net, device, cl)
            az_ms = 1e3 * timed(lambda n=net, c=cl: az_scores(n, device, c), device, args.reps)
            base_ms = 1e3 * timed(lambda n=net, c=cl: plain_fwd_bwd(n, device, c), device, args.reps)
            rows[cl].append((az_ms, base_ms))
            print(f"{arch} | {cl} | {az_ms:.1f} | {base_ms:.1f} | {az_ms / base_ms:.2f}")
            if args.compare_cpu and not cl:
                ref = az_scores(fresh_net(arch, torch.device("cpu"), False), torch.device("cpu"))
                for k in AZ:
                    a, b = scores[k], ref[k]
                    if math.isfinite(a) and math.isfinite(b):
                        worst[k] = max(worst[k], abs(a - b) / max(abs(b), 1e-12))
                    elif a != b:
                        worst[k] = math.inf
    for cl, vals in rows.items():
        az_mean = statistics.mean(v[0] for v in vals)
        base_mean = statistics.mean(v[1] for v in vals)
        print(f"MEAN channels_last={cl}: az pass {az_mean:.1f} ms, plain fwd+bwd {base_mean:.1f} ms")
    if args.compare_cpu:
        print("max rel diff vs CPU:", {k: f"{v:.2e}" for k, v in worst.items()})


if __name__ == "__main__":
    main()
