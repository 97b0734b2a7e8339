"""InTrain protocol ablation: Kendall tau vs NB201 CIFAR-10 test accuracy for the choices the paper leaves open.

Usage: ``python benchmarks/intrain_ablation.py --n 80 --out benchmarks/reports/intrain_ablation.csv``; with
``--timing`` it only times the pass against its floor (one bare forward + backward) on ``--n`` archs.
(1 torch thread; seed 1 per arch, exactly as the engine does). Writes one row per arch x setting with the raw
components, and logs one tau table per setting.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import random
import time
from pathlib import Path

import torch
from scipy.stats import kendalltau
from torch import nn

from zcscore.engine import ArchContext, ScoreConfig, seed_everything
from zcscore.proxies.intrain import InTrainStats, cell_layers, conv_linear_layers, gaussian_input, run_intrain
from zcscore.settings import get_settings
from zcscore.spaces.nb201 import NB201Arch
from zcscore.spaces.nb201_net import build_nb201

log = logging.getLogger("intrain_ablation")


def kaiming_fan_in(net: nn.Module) -> None:
    """AZ-NAS-style re-init: kaiming-normal fan_in (relu) weights, zero biases, BN gamma 1 / beta 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def sample_archs(n: int, seed: int) -> list[tuple[str, float]]:
    """``n`` distinct-class NB201 archs with their CIFAR-10 test accuracy, sampled with ``seed``."""
    with open(get_settings().data_path / "nb201.csv") as fh:
        rows = [(r["arch"], float(r["cifar10_test"])) for r in csv.DictReader(fh)]
    rng = random.Random(seed)
    rng.shuffle(rows)
    seen, out = set(), []
    for arch, acc in rows:
        canon = NB201Arch.parse(arch).canonical()
        if canon not in seen:
            seen.add(canon)
            out.append((arch, acc))
        if len(out) == n:
            break
    return out


def stats_for(arch: str, bn: str, init: str, device: str = "cpu") -> dict[str, InTrainStats]:
    """One InTrain pass under the engine protocol, with the given BN mode and init."""
    config = ScoreConfig(seed=1, device=device)
    seed_everything(config.seed)
    net = build_nb201(arch)
    ctx = ArchContext(net, config, torch.get_rng_state())
    net = ctx.restore()
    if init == "kaiming":
        kaiming_fan_in(net)
    if bn == "eval":
        net.eval()
    x = gaussian_input(ctx)
    return run_intrain(net, x, {"conv": conv_linear_layers(net), "cell": cell_layers(net)})


def variants(st: InTrainStats) -> dict[str, float]:
    """Every proxy variant computable from one layer set's stats."""
    gamma, layers = st.gamma(), st.layers
    out = {"pr": gamma}
    for params in ("all", "w"):
        for std in ("pop", "unb"):
            o = st.resilience(weights_only=params == "w", unbiased=std == "unb")  # default: all, unb
            tag = f"{params}_{std}"
            out[f"grad_{tag}"] = o
            out[f"I_{tag}"] = gamma * (1 + o) / math.log(layers + 1)
            out[f"add_{tag}"] = gamma + o
            out[f"addnorm_{tag}"] = (gamma + o) / math.log(layers + 1)
    return out


def tau(scores: list[float], accs: list[float]) -> float:
    """Kendall tau-b with NaN ranked lowest."""
    s = [-math.inf if math.isnan(v) else v for v in scores]
    return float(kendalltau(s, accs).statistic)


def timing(archs: list[str]) -> tuple[float, float]:
    """Mean seconds of the InTrain pass and of its floor (bare forward + CE backward, same input), CPU."""
    from zcscore.proxies.intrain import intrain_pass

    ours = floor = 0.0
    for arch in archs:
        seed_everything(1)
        ctx = ArchContext(build_nb201(arch), ScoreConfig(), torch.get_rng_state())
        ctx.restore()
        t = time.perf_counter()
        intrain_pass(ctx)
        ours += time.perf_counter() - t
        net = ctx.restore()
        t = time.perf_counter()
        x = gaussian_input(ctx)
        logits = net(x)[1]
        labels = torch.randint(0, logits.shape[1], (logits.shape[0],))
        torch.autograd.grad(nn.functional.cross_entropy(logits, labels), list(net.parameters()))
        floor += time.perf_counter() - t
    return ours / len(archs), floor / len(archs)


def main() -> None:
    """Run the sweep and write the per-arch CSV."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=80)
    parser.add_argument("--seed", type=int, default=20260)
    parser.add_argument("--settings", default="train-default,eval-default,train-kaiming")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/reports/intrain_ablation.csv"))
    parser.add_argument("--timing", action="store_true", help="only time the pass vs its floor on --n archs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    if args.timing:
        ours, floor = timing([a for a, _ in sample_archs(args.n, args.seed)])
        log.info("InTrain pass %.3f s/arch, floor (forward + backward) %.3f s/arch", ours, floor)
        return
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    archs = sample_archs(args.n, args.seed)
    accs = [a for _, a in archs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for setting in args.settings.split(","):
        bn, init = setting.split("-")
        table: dict[str, list[float]] = {}
        t0 = time.perf_counter()
        for arch, acc in archs:
            per_set = stats_for(arch, bn, init, args.device)
            row = {"setting": setting, "arch": arch, "acc": acc}
            for layer_set, st in per_set.items():
                for key, value in variants(st).items():
                    row[f"{layer_set}:{key}"] = value
                    table.setdefault(f"{layer_set}:{key}", []).append(value)
            rows.append(row)
        log.info("setting %s: %.2f s/arch", setting, (time.perf_counter() - t0) / len(archs))
        for key, values in sorted(table.items()):
            log.info("  %-24s tau %.3f", key, tau(values, accs))
    with open(args.out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
