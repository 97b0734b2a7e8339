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


def test_proxies_columns_line_up_on_a_space():
    """With --space, every proxy line has the same columns: the longest pass list still leaves a gap before yes/no."""
    proc = zcscore("proxies", "--space", "mbv2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n\n")[0].splitlines()
    start = lines[0].index("on mbv2")
    rows = [line for line in lines[1:] if not line.startswith(" ")]
    assert all(row[start - 1] == " " and row[start:].split()[0] in ("yes", "no") for row in rows)
    assert any(row.startswith("vkdnw_agg ") and row[start:].startswith("no ") for row in rows)
    reasons = [line for line in lines[1:] if line.startswith(" ")]
    assert reasons and all(line[:start].strip() == "" and "not on mbv2: " in line for line in reasons)


def test_score_formatting():
    assert format_score(float("nan")) == "nan"
    assert format_score(float("-inf")) == "-inf"
    assert format_score(float("inf")) == "inf"
    assert float(format_score(0.1 + 0.2)) == 0.1 + 0.2


def test_score_other_spaces_at_their_input_protocol(tmp_path):
    """NB101 and MobileNetV2 through the CLI: AZ-NAS draws its Gaussian batch at the space's input (3x64x64 here)."""
    out = tmp_path / "mbv2.csv"
    arch = "r64-s16-[e1k3s1d1w16][e4k5s2d2w24][e6k3s2d1w32se]-l128"
    proc = zcscore(
        "score", "--space", "mbv2", "--proxies", "az_nas,intrain,params,flops", "--arch", arch, "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    rows = {r["proxy"]: r for r in csv.DictReader(out.open())}
    assert all(r["error"] == "" for r in rows.values()) and float(rows["intrain"]["score"]) > 0
    from zcscore.spaces import get_space

    space = get_space("mbv2")
    assert float(rows["flops"]["score"]) == space.flops_m(space.parse(arch), num_classes=10)
    refused = zcscore("score", "--space", "mbv2", "--proxies", "zico", "--arch", arch, "--out", "-")
    assert refused.returncode == 2 and "zico is not defined for space mbv2" in refused.stderr
    nb101 = '{"matrix": [[0,1,0],[0,0,1],[0,0,0]], "ops": ["input","conv3x3-bn-relu","output"]}'
    proc = zcscore("score", "--space", "nb101", "--proxies", "params,az_nas", "--arch", nb101, "--out", "-")
    assert proc.returncode == 0 and proc.stdout.count("\n") == 3, proc.stderr
