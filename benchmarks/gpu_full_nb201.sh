#!/usr/bin/env bash
# All 15,625 NB201 archs x the five seed proxies (az_nas, zico, xi_gsnr, intrain, epsinas) on one GPU,
# inside a time budget, with a throughput report. Installs nothing from the network.
#
#   bash benchmarks/gpu_full_nb201.sh [REPORT_DIR]        # default $OUT/gpu_full_nb201 or benchmarks/reports/...
#
# Environment (all optional):
#   BUDGET_S=540       wall-clock budget of the whole script (it ends inside it, with a partial report if needed)
#   DEVICE=cuda        cuda, cuda:N (cpu for a dry run)
#   WORKERS=auto       scoring processes on the GPU for the full run (auto: free memory / per-worker estimate)
#   GPU_MEM_PER_WORKER_MB=2048   the per-worker estimate behind auto (see zcscore.capacity)
#   BATCH=1            archs per batched pass where one exists (--batch; the NB201 seed passes)
#   SAMPLE=            score a random sample of this size instead of --all (dry runs)
#   SWEEP_SAMPLE=16    archs of the 1-worker per-proxy throughput sweep run first (0: skip it)
#   BATCHES="1 8 16"   group sizes (--batch) whose suite throughput is measured on BATCH_SAMPLE=32 archs ("": skip)
#   GPU_TESTS=1        run the @pytest.mark.gpu equality tests of the batched path first (needs pytest)
#   REUSE=             an earlier run's scores.csv whose rows are taken over (resume on a fresh machine)
#   PYTHON=python      the interpreter with zcscore (and torch with CUDA) installed
#   ZCSCORE_DATA_DIR   folder with nb201.csv and cifar10_subset.npz (default: ../shared/data or ./shared/data;
#                      on a lent device machine copy /work/shared/data to ./shared/data first: untracked, not
#                      ignored files travel with the working tree)
#
# Resumable: re-running with the same REPORT_DIR (or REUSE=<old>/full/scores.csv) scores only what is left.
# Writes REPORT_DIR/{env.txt, sweep/throughput.{csv,md}, full/{scores.csv,run.json,report.md}, summary.md}.
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
start=$(date +%s)
BUDGET_S=${BUDGET_S:-540}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-auto}
BATCH=${BATCH:-1}
SWEEP_SAMPLE=${SWEEP_SAMPLE:-16}
PY=${PYTHON:-python}
PROXIES=az_nas,zico,xi_gsnr,intrain,epsinas
if [[ -n "${OUT:-}" ]]; then default_dir="$OUT/gpu_full_nb201"; else default_dir="$repo/benchmarks/reports/gpu_full_nb201"; fi
dir="${1:-$default_dir}"
mkdir -p "$dir"
if [[ -z "${ZCSCORE_DATA_DIR:-}" ]]; then
    for d in "$repo/../shared/data" "$repo/shared/data"; do
        [[ -f "$d/nb201.csv" ]] && export ZCSCORE_DATA_DIR="$d" && break
    done
fi
export ZCSCORE_GPU_MEM_PER_WORKER_MB=${GPU_MEM_PER_WORKER_MB:-${ZCSCORE_GPU_MEM_PER_WORKER_MB:-2048}}

left() { echo $((BUDGET_S - ($(date +%s) - start))); }
say() { echo "[gpu_full_nb201 $(($(date +%s) - start))s] $*" | tee -a "$dir/log.txt"; }

# 0. zcscore importable, without the network (an editable install of this checkout, no dependencies)
if ! "$PY" -c "import zcscore" 2>/dev/null; then
    say "zcscore not importable: installing this checkout offline (--no-deps --no-index)"
    "$PY" -m pip install -q --no-deps --no-index --no-build-isolation -e "$repo" || { say "install failed"; exit 2; }
fi
{
    date -u
    "$PY" - <<'EOF'
import torch, zcscore
print("zcscore", zcscore.__version__, "torch", torch.__version__, "cuda", torch.version.cuda)
if torch.cuda.is_available():
    free, total = torch.cuda.mem_get_info()
    print(torch.cuda.get_device_name(), f"free {free / 2**30:.1f} GiB of {total / 2**30:.1f} GiB")
EOF
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
    echo "ZCSCORE_DATA_DIR=${ZCSCORE_DATA_DIR:-} DEVICE=$DEVICE WORKERS=$WORKERS BATCH=$BATCH BUDGET_S=$BUDGET_S"
} >"$dir/env.txt" 2>&1
cat "$dir/env.txt"

bench=("$PY" -m zcscore.cli bench --proxies "$PROXIES" --device "$DEVICE" --score-seed 1 --no-progress --no-plots)

# 1. per-proxy throughput on one worker (small sample; the peak memory column sizes --workers auto)
if ((SWEEP_SAMPLE > 0 && $(left) > 120)); then
    say "sweep: ${SWEEP_SAMPLE} archs, 1 worker, each proxy and the suite"
    timeout --kill-after=10 $(($(left) / 3)) "${bench[@]}" --throughput --sample "$SWEEP_SAMPLE" --seed 0 \
        --workers 1 --batch "$BATCH" --out "$dir/sweep" || say "sweep stopped early (rc $?)"
fi

# 1b. the batched seed passes: equality on this device (every seed proxy), then throughput per group size
if [[ "${GPU_TESTS:-1}" == 1 ]] && "$PY" -c "import pytest" 2>/dev/null && (($(left) > 240)); then
    say "gpu tests: the batched passes equal the one-arch path on $DEVICE"
    timeout --kill-after=10 120 "$PY" -m pytest -q -s -m gpu tests/service/test_batched.py 2>&1 | tail -4 \
        | tee -a "$dir/log.txt"
fi
for k in ${BATCHES-1 8 16}; do
    (($(left) > 200)) || break
    say "seed suite: ${BATCH_SAMPLE:-32} archs, batch $k"
    timeout --kill-after=10 90 "${bench[@]}" --throughput --sample "${BATCH_SAMPLE:-32}" --seed 0 --workers 1 \
        --batch "$k" --out "$dir/sweep" || say "batch $k stopped (rc $?)"
done

# 2. the full run with the best worker count, stopped before the budget ends (resumable journal)
src=(--all)
[[ -n "${SAMPLE:-}" ]] && src=(--sample "$SAMPLE" --seed 0)
reuse=()
[[ -n "${REUSE:-}" ]] && reuse=(--reuse "$REUSE")
count() {  # archs with every direct proxy scored in DIR/full/scores.csv
    "$PY" - "$dir/full/scores.csv" <<'EOF'
import sys
from pathlib import Path
from zcscore.bench.runner import direct_names
from zcscore.bench.scorefile import read_rows
need = set(direct_names("az_nas,zico,xi_gsnr,intrain,epsinas".split(",")))
have = {}
for r in read_rows(Path(sys.argv[1])) if Path(sys.argv[1]).exists() else []:
    have.setdefault(r.arch, set()).add(r.proxy)
print(sum(1 for p in have.values() if need <= p))
EOF
}
before=$(count)
t0=$(date +%s)
run_s=$(($(left) - 45))  # leave time for the partial report
say "full run: ${src[*]} workers=$WORKERS batch=$BATCH, ${before} archs already done, ${run_s}s allowed"
timeout --kill-after=10 "$run_s" "${bench[@]}" "${src[@]}" --workers "$WORKERS" --batch "$BATCH" \
    "${reuse[@]}" --out "$dir/full"
rc=$?
t1=$(date +%s)
after=$(count)
if ((rc != 0)); then
    say "full run incomplete (rc $rc): partial report over the archs done"
    timeout --kill-after=5 30 "${bench[@]}" "${src[@]}" --workers 1 --limit 0 --partial --out "$dir/full" >/dev/null 2>&1
fi
wall=$((t1 - t0))
rate=$("$PY" -c "print(f'{($after - $before) / max($wall, 1):.2f}')")
total=15625
[[ -n "${SAMPLE:-}" ]] && total=$SAMPLE
{
    echo "# NB201 x {$PROXIES} on $DEVICE"
    echo
    echo "- archs done: $after of $total ($((after - before)) in this run, ${wall}s wall, workers=$WORKERS, batch=$BATCH)"
    echo "- suite throughput of the full run: **$rate archs/s** (isomorphs count as archs; start-up included)"
    echo "- complete: $([[ $rc == 0 ]] && echo yes || echo "no (rc $rc; re-run to resume)")"
    echo
    [[ -f "$dir/sweep/throughput.md" ]] && { echo "## One worker, each proxy"; echo; cat "$dir/sweep/throughput.md"; }
    [[ -f "$dir/full/report.md" ]] && echo "Rank correlations over the archs done: full/report.md (partial when incomplete)."
} >"$dir/summary.md"
say "done: $after/$total archs, $rate archs/s -> $dir/summary.md"
cat "$dir/summary.md"
