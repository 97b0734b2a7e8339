"""Time the REAL_GRADS pass (ZiCo, xi-GSNR, both) against plain forward+backward passes of the same net.

Run: ``python benchmarks/bench_real_grads.py --archs 10 --threads 1 --workers 10`` (CPU) or ``--device cuda``.
Archs are the first canonical archs of ``nb201_reference_official.csv``. For each arch, layout
(contiguous / channels_last) and repeat, the runs are interleaved; the median over repeats is reported.
The floor is ``k`` x (zero_grad, forward, CE, backward) on the restored network with the same batches.
Also reports the largest relative difference to the official scores for each layout.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from scipy.stats import kendalltau

from service.engine import ArchContext, ScoreConfig, seed_everything
from service.proxies.gradients import real_grads_pass, xi_gsnr_score, zico_score
from service.settings import get_settings
from service.spaces.nb201 import NB201Arch
from service.spaces.nb201_net import build_nb201


def floor(ctx: ArchContext, k: int) -> None:
    """``k`` plain training-style forward+backward passes (what any gradient proxy must at least pay)."""
    net = ctx.restore()
    for j in range(k):
        net.zero_grad(set_to_none=True)
        x, y = ctx.data.batch(j, 64)
        F.cross_entropy(net(ctx.to_device(x))[1], y.to(ctx.device)).backward()


def ours(ctx: ArchContext, k: int, proxies: tuple[str, ...]) -> dict[str, float]:
    """The pass plus the requested proxies, as the engine runs them."""
    ctx.restore()
    rg = real_grads_pass(ctx, k)
    out = {}
    if "zico" in proxies:
        out["zico"] = zico_score(rg)
    if "xi_gsnr" in proxies:
        out["xi_gsnr"] = xi_gsnr_score(rg)
    return out


def timed(ctx: ArchContext, fn: Callable[[], object]) -> float:
    """Wall seconds of ``fn`` (synchronised on CUDA)."""
    ctx.sync()
    t = time.perf_counter()
    fn()
    ctx.sync()
    return time.perf_counter() - t


CASES: dict[str, Callable[[ArchContext], object]] = {
    "floor2": lambda c: floor(c, 2),
    "zico": lambda c: ours(c, 2, ("zico",)),
    "floor8": lambda c: floor(c, 8),
    "xi_gsnr": lambda c: ours(c, 8, ("xi_gsnr",)),
    "both": lambda c: ours(c, 8, ("zico", "xi_gsnr")),
}


def bench_arch(arch: str, device: str, threads: int, repeats: int) -> dict[bool, tuple[dict[str, float], dict]]:
    """Per layout: median seconds of every case and the scores, for one arch (interleaved repeats)."""
    torch.set_num_threads(threads)
    out = {}
    for cl in (False, True):
        seed_everything(1)
        net = build_nb201(arch)
        ctx = ArchContext(net, ScoreConfig(seed=1, device=device, channels_last=cl), torch.get_rng_state())
        scores = ours(ctx, 8, ("zico", "xi_gsnr"))  # warm-up, and the scores
        per: dict[str, list[float]] = {name: [] for name in CASES}
        for _ in range(repeats):
            for name, fn in CASES.items():
                per[name].append(timed(ctx, lambda fn=fn, ctx=ctx: fn(ctx)))
        again = ours(ctx, 8, ("zico", "xi_gsnr"))  # same context, same inputs: is the device deterministic?
        scores.update({f"{k}_repeat": v for k, v in again.items()})
        out[cl] = ({name: statistics.median(ts) for name, ts in per.items()}, scores)
    return out


def main() -> None:
    """Parse arguments, run the benchmark (``--workers`` single-arch processes in parallel), print a table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--archs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1, help="parallel processes (CPU only; one arch each)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    path = get_settings().data_path / "nb201_reference_official.csv"
    rows = [r for r in csv.DictReader(path.open()) if NB201Arch.parse(r["arch"]).canonical().to_str() == r["arch"]]
    rows = rows[: args.archs]
    jobs = [(r["arch"], args.device, args.threads, args.repeats) for r in rows]
    if args.workers > 1:
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            results = pool.starmap(bench_arch, jobs)
    else:
        results = [bench_arch(*job) for job in jobs]
    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu, {args.threads} thread(s)"
    print(f"{len(rows)} canonical archs, {dev}, {args.workers} worker(s), median of {args.repeats}; mean s/arch")
    for cl in (False, True):
        mean = {name: statistics.fmean(res[cl][0][name] for res in results) for name in CASES}
        print(
            f"channels_last={cl!s:5}  floor2 {mean['floor2']:.3f}  zico {mean['zico']:.3f} "
            f"({mean['zico'] / mean['floor2']:.3f}x)  floor8 {mean['floor8']:.3f}  xi_gsnr {mean['xi_gsnr']:.3f} "
            f"({mean['xi_gsnr'] / mean['floor8']:.3f}x)  both {mean['both']:.3f} ({mean['both'] / mean['floor8']:.3f}x)"
        )
    for cl in (False, True):
        for proxy in ("zico", "xi_gsnr"):
            got = [res[cl][1][proxy] for res in results]
            ref = [float(r[proxy]) for r in rows]
            rels = [abs(a - b) / (abs(b) or 1.0) for a, b in zip(got, ref)]
            rel = max(rels)
            worst = rels.index(rel)
            tau = kendalltau(got, ref)[0]
            rep = max(
                abs(res[cl][1][proxy] - res[cl][1][f"{proxy}_repeat"]) / (abs(res[cl][1][proxy]) or 1.0)
                for res in results
            )
            print(
                f"channels_last={cl!s:5}  {proxy:8} max rel diff vs official {rel:.2e}  tau {tau:.3f}  repeat {rep:.1e}"
            )
            print(f"    worst: {rows[worst]['arch']} ours {got[worst]:.7g} official {ref[worst]:.7g}")


if __name__ == "__main__":
    main()
