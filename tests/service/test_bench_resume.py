"""``zcscore bench`` resumes: an interrupted run re-scores only the archs it had not finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zcscore.bench.scorefile import Journal, read_rows
from zcscore.cli import main

ARGS = ["--proxies", "params,flops", "--threads", "1", "--no-progress", "--no-plots"]


def _done_archs(path: Path, proxies: int = 2) -> dict[str, list[list[str]]]:
    by_arch: dict[str, list[list[str]]] = {}
    for row in read_rows(path):
        by_arch.setdefault(row.arch, []).append(row.fields)
    return {a: r for a, r in by_arch.items() if len(r) == proxies}


def _meta(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def test_kill_then_rerun_scores_only_the_rest(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "zcscore.cli", "bench", *ARGS, "--sample", "120", "--seed", "7", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "scores.csv").exists() and len(_done_archs(out / "scores.csv")) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "bench finished before it could be killed"
    before = _done_archs(out / "scores.csv")
    assert 3 <= len(before) < 120
    assert not (out / "summary.csv").exists()

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    meta = _meta(out)
    assert meta["complete"] is True
    assert meta["resumed_archs"] == len(before)
    assert meta["scored_archs"] == 120 - len(before)
    after = _done_archs(out / "scores.csv")
    assert len(after) == 120 and len(read_rows(out / "scores.csv")) == 240
    for arch, fields in before.items():  # resumed rows kept verbatim (timings included): not rescored
        assert sorted(after[arch]) == sorted(fields)


def test_sigterm_then_more_signals_still_write_the_partial_report(tmp_path: Path, data_dir: Path) -> None:
    """SIGTERM (as ``timeout`` sends it) stops the bench like Ctrl-C; signals after it wait for the partial report."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "zcscore.cli", "bench", *ARGS, "--sample", "300", "--seed", "3", "--workers", "2"]
    cmd += ["--partial", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "scores.csv").exists() and len(_done_archs(out / "scores.csv")) >= 3:
            break
        time.sleep(0.02)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGINT, signal.SIGTERM):
        proc.send_signal(sig)
        time.sleep(0.05)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 3, stderr  # EXIT_INCOMPLETE, not killed by a signal
    assert "Traceback" not in stderr and "interrupted" in stderr
    meta = _meta(out)
    assert meta["complete"] is False and 3 <= meta["done_archs"] < 300
    assert "complete: `False`" in (out / "report.md").read_text()
    assert len(_done_archs(out / "scores.csv")) == meta["done_archs"]


def test_limit_then_resume_in_process(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "run"
    base = ["bench", *ARGS, "--sample", "10", "--seed", "1", "--out", str(out)]
    assert main([*base, "--limit", "4"]) == 3
    first = _done_archs(out / "scores.csv")
    assert len(first) == 4 and _meta(out)["complete"] is False
    assert main(base) == 0
    meta = _meta(out)
    assert (meta["resumed_archs"], meta["scored_archs"]) == (4, 6)
    final = _done_archs(out / "scores.csv")
    assert len(final) == 10
    assert all(sorted(final[a]) == sorted(f) for a, f in first.items())
    assert [leg["scored_archs"] for leg in meta["legs"]] == [4, 6]
    assert main(base) == 0  # nothing left: re-running is free, and the record of the scoring legs stays
    again = _meta(out)
    assert (again["resumed_archs"], again["scored_archs"]) == (10, 0)
    assert again["legs"] == meta["legs"]
    assert again["wall_s_total"] == pytest.approx(sum(leg["wall_s"] for leg in meta["legs"]))


def test_partial_lines_half_done_archs_and_seed_guard(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    prov = json.dumps({"seed": 1, "proxy_version": 1}).replace('"', '""')
    a, b, c = "|a|", "|b|", "|c|"
    header = "arch,proxy,score,seconds,components,error,provenance\r\n"
    good = "".join(f'{x},{p},1.0,0.01,,,"{prov}"\r\n' for x in (a, b) for p in ("params", "flops"))
    incomplete = f'{c},params,1.0,0.01,,,"{prov}"\r\n'
    path.write_text(header + good + incomplete + f"{c},flops,1.0,0.0")  # killed mid-line
    journal = Journal(path, {"params": 1, "flops": 1}, seed=1)
    assert journal.load([a, b, c]) == 0  # the cut line is unreadable, every whole row is kept
    assert journal.remaining([a, b, c, c]) == [c] and journal.missing(c) == ("flops",)  # c is half done
    assert path.read_text().endswith("\n") and len(read_rows(path)) == 5  # cleaned for appending
    with pytest.raises(ValueError, match="seed 1"):
        Journal(path, {"params": 1, "flops": 1}, seed=2).load([a, b])
    stale = Journal(path, {"params": 2, "flops": 1}, seed=1)  # params changed version: rescore
    assert stale.load([a, b]) == 3  # two params rows of an old version, and the row of c (not in this run)
    assert stale.missing(a) == ("params",) and stale.missing(b) == ("params",)
    with path.open("a") as fh:  # a population proxy's row: rebuilt by the report, dropped but not stale
        fh.write(f'{a},az_nas,1.0,0.01,,,"{prov}"\r\n')
    assert Journal(path, {"flops": 1}, seed=1, derived=frozenset({"az_nas"})).load([a, b]) == 0
    assert all(row.proxy == "flops" for row in read_rows(path))


def test_population_proxy_recomputed_over_the_whole_set(tmp_path: Path, data_dir: Path) -> None:
    from zcscore.bench.truth import sample_archs
    from zcscore.engine import Engine, ScoreConfig

    common = ["--proxies", "az_nas", "--threads", "1", "--no-progress", "--no-plots", "--sample", "6", "--seed", "2"]
    split = tmp_path / "split"
    assert main(["bench", *common, "--out", str(split), "--limit", "3"]) == 3
    assert main(["bench", *common, "--out", str(split)]) == 0
    got = {(r.arch, r.proxy): r.score for r in read_rows(split / "scores.csv")}
    assert len(got) == 6 * 5  # 4 components + az_nas per arch
    archs = sample_archs(6, 2, data_dir)
    want = {(r.arch, r.proxy): r.score for r in Engine(["az_nas"], ScoreConfig(threads=1)).score_archs(archs)}
    assert all(got[k] == pytest.approx(v) for k, v in want.items())


def test_bench_scores_nb101_archs_against_the_sample_validation_accuracy(tmp_path: Path, data_dir: Path) -> None:
    from scipy.stats import kendalltau

    from zcscore.bench.truth import accuracies, sample_archs

    out = tmp_path / "nb101"
    assert main(["bench", "--space", "nb101", *ARGS, "--sample", "6", "--seed", "3", "--out", str(out)]) == 0
    archs = sample_archs(6, 3, space="nb101")
    rows = [r for r in read_rows(out / "scores.csv") if r.proxy == "params"]
    assert sorted(r.arch for r in rows) == sorted(archs)
    params = {r.arch: r.score for r in rows}
    summary = (out / "summary.csv").read_text().splitlines()
    tau = kendalltau([params[a] for a in archs], accuracies(archs, "naslib_val_accuracy", space="nb101")).statistic
    got = next(line for line in summary if line.startswith("params,")).split(",")
    assert got[1] == "6" and float(got[2]) == pytest.approx(tau, abs=1e-6)
    assert got[4] == "nan"  # NB101 has no CIFAR-100 target
    report = (out / "report.md").read_text()
    assert "nb101_sample.csv" in report and "τ cifar100" not in report
    # the papers' NB101 figures (xi-GSNR Table 2: params 0.298 / 0.423), none of the NB201 ones (AZ-NAS 0.578)
    assert "| params | 6 |" in report and "| 0.298 |" in report and "| 0.423 |" in report
    assert "0.434" in report and "0.56" in report and "0.578" not in report


def test_reuse_takes_earlier_rows_and_scores_only_the_missing_proxies(tmp_path: Path, data_dir: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    base = ["bench", "--threads", "1", "--no-progress", "--no-plots", "--sample", "5", "--seed", "11"]
    assert main([*base, "--proxies", "params", "--out", str(first)]) == 0
    earlier = {r.arch: r.fields for r in read_rows(first / "scores.csv")}
    reuse = ["--reuse", str(first / "scores.csv")]
    assert main([*base, "--proxies", "params,flops", *reuse, "--out", str(second)]) == 0
    rows = read_rows(second / "scores.csv")
    assert {r.arch: r.fields for r in rows if r.proxy == "params"} == earlier  # taken as is, not re-scored
    assert len([r for r in rows if r.proxy == "flops"]) == 5
    assert _meta(second)["scored_archs"] == 5 and "--reuse" in _meta(second)["command"]
    compact = tmp_path / "compact.csv"  # an older report's arch,proxy,score,seconds file is reusable too
    compact.write_text("arch,proxy,score,seconds\n" + "".join(",".join(f[:4]) + "\n" for f in earlier.values()))
    third = tmp_path / "third"
    assert main([*base, "--proxies", "params", "--reuse", str(compact), "--out", str(third)]) == 0
    assert _meta(third)["scored_archs"] == 0
    assert {r.arch: r.score for r in read_rows(third / "scores.csv")} == {a: float(f[2]) for a, f in earlier.items()}


def test_partial_report_over_the_archs_done_so_far(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "partial"
    common = ["bench", *ARGS, "--sample", "5", "--seed", "4", "--out", str(out)]
    assert main([*common, "--limit", "2", "--partial"]) == 3
    summary = (out / "summary.csv").read_text().splitlines()
    assert [line.split(",")[:2] for line in summary[1:]] == [["params", "2"], ["flops", "2"]]
    assert _meta(out)["done_archs"] == 2 and "done_archs" in (out / "report.md").read_text()
    assert main(common) == 0 and len(read_rows(out / "scores.csv")) == 10  # resumes: the 3 others, nothing twice


@pytest.mark.parametrize("workers", ["1", "2"])
def test_interrupt_with_partial_reports_the_archs_done(tmp_path: Path, data_dir: Path, workers: str) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "zcscore.cli", "bench", *ARGS, "--sample", "2000", "--seed", "7"]
    cmd += ["--workers", workers, "--partial", "--out", str(out)]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "scores.csv").exists() and len(_done_archs(out / "scores.csv")) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err  # incomplete: re-run to resume
    meta = _meta(out)
    done = _done_archs(out / "scores.csv")
    assert meta["complete"] is False and meta["done_archs"] == meta["scored_archs"] == len(done) >= 3
    summary = (out / "summary.csv").read_text().splitlines()
    assert summary[1].split(",")[:2] == ["params", str(len(done))]  # the partial report is over the archs done
    assert "Traceback" not in err and "partial report" in err
