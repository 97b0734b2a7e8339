"""Compare the engine's AZ-NAS sub-scores with the official code's on the canonical reference archs.

Run: ``python benchmarks/az_nas_fidelity.py --channels-last 0 --out /tmp/az_cl0.csv`` (about 2-4 min per
layout on one thread). Prints, per sub-score, the finite pairs, ±inf disagreements, max errors and Kendall τ.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import torch
from scipy.stats import kendalltau

from service.engine import Engine, ScoreConfig
from service.settings import get_settings
from service.spaces.nb201 import NB201Arch

AZ = ("az_expressivity", "az_progressivity", "az_trainability")
REFERENCE = get_settings().data_path / "nb201_reference_official.csv"


def main() -> None:
    """Score, write one CSV row per arch, print the summary."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels-last", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--reference", type=Path, default=REFERENCE)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with open(args.reference) as fh:
        rows = [r for r in csv.DictReader(fh) if NB201Arch.parse(r["arch"]).canonical().to_str() == r["arch"]]
    engine = Engine(list(AZ), ScoreConfig(seed=1, channels_last=bool(args.channels_last)))
    t = time.perf_counter()
    got = [{rec.proxy: rec.score for rec in engine.score_archs([r["arch"]])} for r in rows]
    seconds = (time.perf_counter() - t) / len(rows)
    with open(args.out, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["arch", *(f"ref_{n}" for n in AZ), *AZ])
        for r, s in zip(rows, got):
            out.writerow([r["arch"], *(r[n] for n in AZ), *(repr(s[n]) for n in AZ)])
    print(f"channels_last={bool(args.channels_last)} archs={len(rows)} s/arch={seconds:.3f}")
    for n in AZ:
        ref, ours = [float(r[n]) for r in rows], [s[n] for s in got]
        flips = sum((math.isinf(a) or math.isinf(b)) and a != b for a, b in zip(ref, ours))
        fin = [(a, b) for a, b in zip(ref, ours) if math.isfinite(a) and math.isfinite(b)]
        rel = max(abs(a - b) / abs(a) for a, b in fin if a != 0)
        err = max(abs(a - b) for a, b in fin)
        tau = kendalltau(ours, ref).statistic
        print(f"{n}: finite={len(fin)} inf_mismatch={flips} max_rel={rel:.2e} max_abs={err:.2e} tau={tau:.4f}")


if __name__ == "__main__":
    main()
