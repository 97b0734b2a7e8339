"""epsinas fidelity and speed against the official reference (``nb201_reference_official.csv:epsinas``).

Usage: ``python benchmarks/epsinas_check.py [--n 150] [--workers 1] [--floor]`` (1 torch thread per worker).
Logs the NaN-pattern agreement, the largest relative / absolute deviation, and seconds per arch of our pass;
``--floor`` also times the floor (two plain forwards of the 256-image batch, no weight setting, no scoring).
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import time
from concurrent.futures import ProcessPoolExecutor

import torch

from service.engine import ArchContext, Engine, ScoreConfig, seed_everything
from service.proxies.epsinas import epsinas_pass, epsinas_score
from service.settings import get_settings
from service.spaces.nb201_net import build_nb201

log = logging.getLogger("epsinas_check")


def _two_forwards(net: torch.nn.Module, x: torch.Tensor) -> float:
    t = time.perf_counter()
    with torch.inference_mode():
        net(x)
        net(x)
    return time.perf_counter() - t


def score_one(arch: str, floor: bool) -> tuple[float, float, float, float]:
    """(epsinas via the engine, s of pass + score, s of the floor in NCHW and channels-last, NaN if not asked)."""
    torch.set_num_threads(1)
    engine = Engine(["epsinas"], ScoreConfig(threads=1))
    score = engine.score_network(lambda: build_nb201(arch), arch)[0].score
    seed_everything(1)
    ctx = ArchContext(build_nb201(arch), ScoreConfig(), torch.get_rng_state())
    ctx.restore()
    t = time.perf_counter()
    epsinas_score(epsinas_pass(ctx))
    ours_s = time.perf_counter() - t
    floor_nchw = floor_cl = math.nan
    if floor:  # the bare minimum: two forwards of the 256-image batch, default weights
        x = ctx.data.rows(0, 256)[0]
        ctx.restore()
        floor_cl = _two_forwards(ctx.net, x.contiguous(memory_format=torch.channels_last))
        ctx.net.to(memory_format=torch.contiguous_format)
        floor_nchw = _two_forwards(ctx.net, x)
    return score, ours_s, floor_nchw, floor_cl


def main() -> None:
    """Score the reference archs and log the comparison."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--floor", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with open(get_settings().data_path / "nb201_reference_official.csv") as fh:
        rows = list(csv.DictReader(fh))[: args.n]
    archs = [r["arch"] for r in rows]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(score_one, archs, [args.floor] * len(archs)))
    nan_mismatch, max_rel, max_abs = 0, 0.0, 0.0
    for row, (ours, *_) in zip(rows, results):
        ref = float(row["epsinas"])
        if math.isnan(ref) != math.isnan(ours):
            nan_mismatch += 1
            log.info("NaN mismatch: %s ref %s ours %s", row["arch"], ref, ours)
        elif not math.isnan(ref):
            max_abs = max(max_abs, abs(ours - ref))
            max_rel = max(max_rel, abs(ours - ref) / abs(ref))
    n_nan = sum(math.isnan(r[0]) for r in results)
    ours_s = sum(r[1] for r in results) / len(results)
    ref_s = sum(float(r["seconds_epsinas"]) for r in rows) / len(rows)
    log.info("archs %d, NaN %d, NaN-pattern mismatches %d", len(rows), n_nan, nan_mismatch)
    log.info("max |ours-ref| %.3g, max rel %.3g", max_abs, max_rel)
    log.info("ours %.3f s/arch (pass + score, no build); official (reference csv) %.3f s/arch", ours_s, ref_s)
    if args.floor:
        floor_nchw = sum(r[2] for r in results) / len(results)
        floor_cl = sum(r[3] for r in results) / len(results)
        log.info("floor (2 forwards of 256): NCHW %.3f s/arch, channels-last %.3f s/arch", floor_nchw, floor_cl)


if __name__ == "__main__":
    main()
