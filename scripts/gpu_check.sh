#!/usr/bin/env bash
# The GPU checks of issue 12 in one go, for a machine with an NVIDIA GPU (about 5-8 min):
#
#   1. the GPU facts (nvidia-smi, torch, triton, nvcc, ncu);
#   2. the tests marked `gpu` (Triton GS kernels, the CUDA shared-memory kernel, the
#      torch baselines and the `cuda` latency backend on the device);
#   3. the bank-conflict check: one 4096x4096 GS V=32 matrix with its conflict-free
#      layout, a random layout and a 32-way conflicting one, timed, and profiled with
#      Nsight Compute's shared-load counters when ncu is on PATH (gs_banks_cuda.md);
#   4. the GPU kernel table for the shapes of the CPU table (kernels_cuda.md/.csv),
#      given the time that is left (it rewrites its files after every shape).
#
# Usage: scripts/gpu_check.sh OUT_DIR [BUDGET_SECONDS]   (run from the repository root)
# Writes at most five files into OUT_DIR: summary.md (one row per step: exit status and
# seconds), check.log (everything the steps printed), gs_banks_cuda.md,
# kernels_cuda.md and kernels_cuda.csv. A failing step does not stop the later ones.
# PYTHON (default python3) is the interpreter with torch; GSPRUNE_BUILD_DIR (default
# /tmp/gsprune_build) caches the compiled kernels between steps.
set -u
OUT=${1:?usage: scripts/gpu_check.sh OUT_DIR [BUDGET_SECONDS]}
BUDGET=${2:-470}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
LOG="$OUT/check.log"
SUMMARY="$OUT/summary.md"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export GSPRUNE_BUILD_DIR=${GSPRUNE_BUILD_DIR:-/tmp/gsprune_build}
START=$(date +%s)
JOBS=$(( $(nproc) > 12 ? 12 : $(nproc) ))

printf '# gpu_check %s\n\n| step | exit | seconds |\n|---|---|---|\n' "$(date -u +%FT%TZ)" >"$SUMMARY"
: >"$LOG"

# step NAME LIMIT_SECONDS COMMAND...: run with a time limit, log, and add a summary row.
step() {
  local name=$1 limit=$2 began rc
  shift 2
  began=$(date +%s)
  printf '\n===== %s (limit %ss): %s\n' "$name" "$limit" "$*" >>"$LOG"
  timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
  rc=$?
  printf '| %s | %s%s | %s |\n' "$name" "$rc" "$([ "$rc" = 124 ] && echo ' (time limit)')" \
    "$(( $(date +%s) - began ))" >>"$SUMMARY"
}

left() { echo $(( BUDGET - ($(date +%s) - START) )); }

step facts 60 bash -c "nvidia-smi; nvidia-smi -q -d CLOCK | head -40; \
  $PY -c 'import torch, triton; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \
\"triton\", triton.__version__, torch.cuda.get_device_name())'; \
  command -v nvcc && nvcc --version | tail -2; command -v ncu && ncu --version | tail -1; true"
step gpu_tests 200 "$PY" -m pytest -q -p no:cacheprovider -m gpu -rfEs \
  tests/kernels/test_gpu_gs.py tests/latency/test_latency_cuda.py
step bank_conflicts 120 "$PY" scripts/bench_gs_banks.py --out "$OUT" --ncu
BENCH_LIMIT=$(( $(left) - 5 ))
if [ "$BENCH_LIMIT" -gt 30 ]; then
  step kernel_table "$BENCH_LIMIT" "$PY" scripts/bench_kernels.py --backend cuda \
    --jobs "$JOBS" --out "$OUT"
else
  printf '| kernel_table | skipped: %ss left of the budget | 0 |\n' "$(left)" >>"$SUMMARY"
fi
printf '\ntotal %s s of a %s s budget\n' "$(( $(date +%s) - START ))" "$BUDGET" >>"$SUMMARY"
cat "$SUMMARY"
