"""``zcscore bench`` outputs: summary/report/plots, workers, speed floors, agreement mode, light import."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from zcscore.bench.compare import agreement, compare_files
from zcscore.bench.published import primary
from zcscore.bench.scorefile import read_rows
from zcscore.bench.summary import SUMMARY_COLUMNS
from zcscore.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_bench_writes_summary_report_and_plots(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "run"
    argv = ["bench", "--proxies", "params,flops", "--sample", "12", "--seed", "0", "--threads", "1"]
    assert main([*argv, "--no-progress", "--out", str(out)]) == 0
    with open(out / "summary.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == SUMMARY_COLUMNS
    assert [r["proxy"] for r in rows] == ["params", "flops"]
    assert all(int(r["n"]) == 12 and -1 <= float(r["kendall_cifar10"]) <= 1 for r in rows)
    # params and flops rank NB201 archs identically up to ties
    assert float(rows[0]["kendall_cifar10"]) == pytest.approx(float(rows[1]["kendall_cifar10"]), abs=0.05)
    assert len(read_rows(out / "scores.csv")) == 24
    report = (out / "report.md").read_text()
    for figure in ("0.741", "0.669", "0.661", "0.690", "0.589"):  # AZ-NAS, InTrain, xi-GSNR, epsinas, ZiCo
        assert figure in report
    assert "| params | 12 |" in report and "| params | `cifar10_test` | exact (AZ-NAS table) |" in report
    for png in ("tau_bars.png", "scatter_params.png", "scatter_flops.png"):
        assert (out / png).read_bytes()[:8] == PNG_MAGIC
        assert f"({png})" in report


def test_workers_give_the_same_scores(tmp_path: Path, data_dir: Path) -> None:
    argv = ["bench", "--proxies", "params,flops", "--sample", "8", "--seed", "5", "--threads", "1"]
    argv += ["--no-progress", "--no-plots"]
    assert main([*argv, "--out", str(tmp_path / "one")]) == 0
    assert main([*argv, "--workers", "2", "--out", str(tmp_path / "two")]) == 0
    one = [(r.arch, r.proxy, r.score) for r in read_rows(tmp_path / "one" / "scores.csv")]
    two = [(r.arch, r.proxy, r.score) for r in read_rows(tmp_path / "two" / "scores.csv")]
    assert one == two and len(one) == 16


def test_floors_write_speed_csv(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "speed"
    argv = ["bench", "--floors", "--proxies", "params,az_nas", "--sample", "2", "--seed", "0", "--threads", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    with open(out / "speed.csv", newline="") as fh:
        rows = {r["proxy"]: r for r in csv.DictReader(fh)}
    assert list(rows["params"].values())[2:] == ["", ""]  # static proxy: no floor
    az = rows["az_nas"]
    assert float(az["ms_per_arch"]) > 0 and float(az["floor_ms_per_arch"]) > 0
    assert float(az["ratio"]) == pytest.approx(float(az["ms_per_arch"]) / float(az["floor_ms_per_arch"]), rel=0.01)
    assert set(rows) == {"params", "az_nas", "all"}  # "all": scored together vs the union of their passes
    assert float(rows["all"]["floor_ms_per_arch"]) > 0
    assert "Speed against the floor" in (out / "report.md").read_text()


def test_agreement_known_answers(tmp_path: Path) -> None:
    a = {"x": 1.0, "y": 2.0, "z": 3.0, "w": float("nan"), "only_a": 5.0}
    b = {"x": 10.0, "y": 30.0, "z": 20.0, "w": 1.0}
    r = agreement(a, b)
    assert (r["common"], r["n"], r["nan_a"], r["nan_b"]) == (4, 3, 1, 0)
    assert r["kendall"] == pytest.approx(1 / 3)
    long_file, wide_file = tmp_path / "long.csv", tmp_path / "wide.csv"
    long_file.write_text(
        "arch,proxy,score,seconds,components,error,provenance\n"
        + "".join(f"{k},epsinas,{v},0.1,,,{{}}\n" for k, v in a.items())
    )
    wide_file.write_text("arch,index,epsinas_cifar10\n" + "".join(f"{k},0,{v}\n" for k, v in b.items()))
    rows = compare_files(long_file, wide_file, ["epsinas=epsinas_cifar10"])
    assert rows[0]["kendall"] == pytest.approx(1 / 3)
    assert compare_files(long_file, wide_file) == []  # no shared names, no mapping
    with pytest.raises(ValueError, match="no proxy/column"):
        compare_files(long_file, wide_file, ["epsinas=zen"])
    tagged = tmp_path / "tagged.csv"  # a long table of several runs, as nb201_zc_naslib_subset.csv
    tagged.write_text(
        "source,dataset,arch,snip\n"
        + "".join(f"A,cifar10,{k},{v}\n" for k, v in b.items())
        + "".join(f"B,cifar10,{k},{-v}\n" for k, v in b.items())
    )
    pick = ["epsinas=snip"]
    assert compare_files(long_file, tagged, pick, ["source=A"])[0]["kendall"] == pytest.approx(1 / 3)
    assert compare_files(long_file, tagged, pick, ["source=B", "dataset=cifar10"])[0]["kendall"] == pytest.approx(
        -1 / 3
    )


def test_compare_cli_against_published_scores(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    published = data_dir / "nb201_zc_scores.csv"
    with open(published, newline="") as fh:
        rows = [r for _, r in zip(range(200), csv.DictReader(fh))]
    ours = tmp_path / "ours.csv"
    ours.write_text(
        "arch,proxy,score,seconds,components,error,provenance\n"
        + "".join(f"{r['arch']},epsinas,{r['epsinas_cifar10']},0,,,{{}}\n" for r in rows)
    )
    assert main(["bench", "--compare", str(ours), str(published), "--map", "epsinas=epsinas_cifar10"]) == 0
    printed = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert printed[0]["proxy_b"] == "epsinas_cifar10" and int(printed[0]["common"]) == 200
    assert float(printed[0]["kendall"]) == pytest.approx(1.0) and float(printed[0]["max_rel_diff"]) == 0.0
    assert int(printed[0]["nan_a"]) > 0  # epsinas NaNs as published


def test_cli_module_imports_light() -> None:
    code = "import sys, zcscore.bench.cli; print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_bad_arguments_exit_2(tmp_path: Path, data_dir: Path) -> None:
    assert main(["bench", "--proxies", "params", "--out", str(tmp_path)]) == 2  # no arch source
    assert main(["bench", "--proxies", "nope", "--sample", "3", "--out", str(tmp_path)]) == 2
    assert main(["bench", "--proxies", "params", "--sample", "0", "--out", str(tmp_path)]) == 2


def test_every_nb201_baseline_has_a_published_tau() -> None:
    """The report's headline figure of each NB201 baseline carries a CIFAR-10 tau (fisher/jacov: InTrain Table 1)."""
    for name in ("grad_norm", "snip", "grasp", "fisher", "synflow", "jacov", "naswot", "zen", "tenas", "vkdnw"):
        entry = primary(name)
        assert entry is not None and entry.kendall[0] is not None, name
    fisher = primary("fisher")
    assert fisher is not None and fisher.source == "InTrain paper, Table 1"
