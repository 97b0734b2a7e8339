"""The ``zcscore score`` and ``zcscore proxies`` commands, run as real processes."""

from __future__ import annotations

import csv
import subprocess
import sys

from zcscore.commands.score import format_score
from zcscore.spaces.nb201 import EXAMPLE_ARCH

ZERO_ARCH = "|none~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|skip_connect~1|none~2|"


def zcscore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zcscore.cli", *args], capture_output=True, text=True, timeout=300)


def test_score_writes_long_csv(tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text(f"{EXAMPLE_ARCH}\n13714\n\n")
    out = tmp_path / "scores.csv"
    proc = zcscore("score", "--proxies", "params,flops", "--archs-file", str(archs), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    assert [r["proxy"] for r in rows] == ["params", "flops", "params", "flops"]
    assert {"arch", "proxy", "score", "seconds"} <= set(rows[0])
    assert float(rows[2]["score"]) == 1.073466


def test_score_rejects_bad_arch_and_unknown_proxy(tmp_path):
    proc = zcscore("score", "--proxies", "params", "--arch", "|bogus~0|", "--out", str(tmp_path / "x.csv"))
    assert proc.returncode == 2 and "node groups" in proc.stderr
    proc = zcscore("score", "--proxies", "nope", "--arch", EXAMPLE_ARCH, "--out", str(tmp_path / "x.csv"))
    assert proc.returncode == 2 and "unknown proxy 'nope'" in proc.stderr


def test_proxies_lists_catalogue():
    proc = zcscore("proxies")
    assert proc.returncode == 0
    for name in ("intrain", "epsinas", "az_nas", "xi_gsnr", "zico", "flops"):
        assert name in proc.stdout


def test_score_formatting():
    assert format_score(float("nan")) == "nan"
    assert format_score(float("-inf")) == "-inf"
    assert format_score(float("inf")) == "inf"
    assert float(format_score(0.1 + 0.2)) == 0.1 + 0.2
