#!/usr/bin/env bash
# The GPU checks and the GPU rows of the Performance table, as ONE prepared run for a lent GPU machine
# (a few minutes of device time; nothing here is needed by CI, which has no GPU).
#
#   bash benchmarks/gpu_check.sh            # writes logs and JSON lines under ${OUT:-gpu-results}/ (from any folder)
#
# The device machine has PyTorch but not all of our dependencies and no internet: put the missing
# pure-Python wheels in .whl/ first (here, with internet; .whl/ is git-ignored via .git/info/exclude):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl lark interegular pydantic pydantic_core annotated-types \
#     typing-inspection typing_extensions timm
# and carry .whl. Every step has its own time limit so one hang cannot eat the whole lease; the total
# stays under about 8 minutes on an H200, and under BUDGET seconds (default 480) in all. Every step also has
# the least time it needs to finish (NEED): a step starts only when that much of BUDGET is left (its limit is
# cut to what is left); otherwise it is skipped without starting anything, as a step cut short would only
# waste the device time. Before any step it stops at once (one line, also in summary.txt, exit 2) when BUDGET
# is not a whole number, without a GPU, or when $PY cannot import automl, onnx, onnxruntime, pytest or pytest-xdist.
# PY (default python3) is the Python every step runs: a path to it (spaces and all; a relative one is named from the
# folder the script is started in, as OUT is), or a command line split at its spaces (PY='python3 -X dev'). OUT must
# be a folder this user may write in and enter (chmod u+wx), else it stops at once (exit 2).
# summary.txt gives each step's outcome: "done" when it exited 0, "FAILED rc=N" (124 or 137: its time
# limit), "skipped: not enough budget left (needs N s)", or "skipped: budget spent" (under 20 s left);
# benchmarks.jsonl, the figures so far, is rewritten after every step; the script exits 1 when a step failed
# or was skipped.
set -u
OUT=${OUT:-gpu-results}
PY=${PY:-python3}
BUDGET=${BUDGET:-480}  # seconds for all steps together: a step gets what is left, at most its own limit
refuse() {  # refuse WHY: one line on stderr and in summary.txt, exit 2, before any step
  echo "gpu_check: $1; nothing was run" | tee "$OUT/summary.txt" >&2
  exit 2
}
if ! mkdir -p -- "$OUT" 2>/dev/null || ! [ -w "$OUT" ]; then
  echo "gpu_check: cannot write to OUT=$OUT (give a writable folder, e.g. OUT=\$PWD/gpu-results); nothing was run" >&2
  exit 2
fi
# the steps run in the repository this script is in (their files are named from there), whatever folder it is
# started from: OUT, and a PY given as a relative path, stay what they name from that folder. A folder that may be
# written but not entered (no x permission: chmod 200) has no path to write its files under
if ! out=$(CDPATH='' cd -- "$OUT" 2>/dev/null && pwd) || [ -z "$out" ]; then
  echo "gpu_check: cannot enter OUT=$OUT (a folder written in must also be searchable: chmod u+x it, or give" \
    "another folder, e.g. OUT=\$PWD/gpu-results); nothing was run" >&2
  exit 2
fi
OUT=$out
# PY: one program, its path as given (spaces and all) when it names a file; otherwise a command line split into
# words at its spaces (PY='python3 -X dev')
if [[ $PY == */* && -e $PY ]]; then py=("$PY"); else read -r -a py <<<"$PY"; fi
[ "${#py[@]}" -gt 0 ] || py=(python3)
case ${py[0]} in
  /*) ;;
  */*) py[0]="$PWD/${py[0]}" ;;
esac
PY="${py[*]}"  # as the messages name it
ROOT=$(CDPATH='' cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd -- "$ROOT" || refuse "cannot enter the repository folder $ROOT"
case "$BUDGET" in
  '' | *[!0-9]*) refuse "BUDGET=$BUDGET is not a whole number of seconds (e.g. BUDGET=450)" ;;
esac
BUDGET=$((10#$BUDGET))  # decimal: bash's arithmetic reads 0450 as octal, and 090 as no number (every step lost)
gpu=$("${py[@]}" -c "import torch; print(torch.cuda.is_available())" 2>&1 | tail -n 1)
if [ "$gpu" != True ]; then
  [ "$gpu" = False ] && gpu="torch.cuda.is_available() is False" || gpu="$PY cannot import torch${gpu:+: $gpu}"
  refuse "no GPU to check on this machine ($gpu)"
fi
export PYTHONUNBUFFERED=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
  "${py[@]}" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
# every module a step imports, before the first step: a missing one would fail each step in turn, the
# quickstart only at its export, minutes in; xdist (pytest-xdist): pyproject's pytest addopts pass -n, which
# pytest without it refuses, and tests/conftest.py has an xdist hook
missing=$("${py[@]}" -c '
import importlib, sys
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as e:
        sys.exit(f"{name} ({type(e).__name__}: {e})")
' automl.pipeline automl.cli onnx onnxruntime pytest xdist 2>&1) \
  || refuse "$PY cannot import $(printf '%s' "$missing" | tail -n 1): put the missing wheels in .whl/ (see the top of \
$0)"
FAILED=0
step() {  # step NAME NEED LIMIT CMD...: run with a limit, append its log to all.log, never stop the script
  local name=$1 need=$2 limit=$3; shift 3
  local left=$((BUDGET - SECONDS))
  if [ "$left" -lt 20 ]; then echo "$name skipped: budget spent" | tee -a "$OUT/summary.txt"; FAILED=1; return; fi
  if [ "$left" -lt "$need" ]; then  # it could not finish: spend nothing on it
    echo "$name skipped: not enough budget left (needs $need s)" | tee -a "$OUT/summary.txt"; FAILED=1; return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0=$SECONDS rc rcfile
  rcfile=$(mktemp)  # the braces run in a subshell (a pipe): their rc comes back through a file
  # -k: a step that ignores the TERM at its limit is killed 10 s later
  { echo "=== $name: $*"; timeout -k 10 "$limit" "$@" 2>&1; rc=$?; echo "$rc" >"$rcfile"
    echo "=== $name: rc=$rc in $((SECONDS - t0)) s"; } | tee -a "$OUT/all.log" | tail -n 30
  rc=$(cat "$rcfile" 2>/dev/null); rm -f "$rcfile"
  if [ "${rc:-?}" = 0 ]; then
    echo "$name done in $((SECONDS - t0)) s (limit $limit)" >>"$OUT/summary.txt"
  else
    local why; case $rc in 124 | 137) why=' (time limit)' ;; *) why='' ;; esac
    echo "$name FAILED rc=${rc:-?}$why in $((SECONDS - t0)) s (limit $limit)" >>"$OUT/summary.txt"
    FAILED=1
  fi
  # after every step, so a run stopped from outside keeps the figures measured so far; replaced whole (a temporary
  # file renamed over it), so a stop while it is written leaves the last whole one
  grep -sh '^{"benchmark"' "$OUT/all.log" >"$OUT/.benchmarks.jsonl.tmp"
  mv -f "$OUT/.benchmarks.jsonl.tmp" "$OUT/benchmarks.jsonl"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "${py[@]}" -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)"
} >"$OUT/summary.txt" 2>&1
cat "$OUT/summary.txt"

# step NAME NEED LIMIT: NEED is the step's time on the H200 (README, Performance) where it was measured, and
# otherwise a low guess (start-up and a first measurement), so as not to skip a step that would fit
# the CUDA-only tests of the engine (with costs that depend on widths, and budgets), checkpoints and costs too, and
# theta's bits from run to run on the GPU (test_review_pb); 8 of these passed in 99 s on 2026-12-04
step tests 100 150 "${py[@]}" -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_search_engine.py \
  tests/test_search_context.py tests/test_review_n.py tests/test_review_am.py tests/test_review_fj.py \
  tests/test_review_pb.py -k "cuda or gpu or synchron or on_a_device" -rs
step engine_speed 20 45 "${py[@]}" benchmarks/engine_speed.py --iters 500 --warmup 50
step supernet_overhead_digits 20 45 "${py[@]}" benchmarks/supernet_overhead.py spaces/digits.space --device cuda \
  --batch 256
step supernet_overhead_proxyless 40 90 "${py[@]}" benchmarks/supernet_overhead.py spaces/proxylessnas.space \
  --device cuda --batch 128
step engine_overhead_proxyless 30 60 "${py[@]}" benchmarks/engine_overhead.py spaces/proxylessnas.space --device cuda \
  --batch 128 --lam 8 --eps 3
step scaling 40 120 "${py[@]}" benchmarks/scaling.py --gpus
# the three methods' search seconds, on a third of the quickstart's epochs (the full ones take about 225 s):
# 61 s of searches on 2026-12-04, besides the warm-up run and the start-up
step search_cost 80 150 "${py[@]}" benchmarks/search_cost.py recipes/quickstart.yaml device=cuda search.supernets=1 \
  search.weight_epochs=5 search.theta_epochs=15 --no-sweep
# last, as it was measured already: 196 s on an H200 (2026-12-04, with cuDNN's autotuning on, since turned off),
# launch-bound at 8x8, no faster than 2 CPU cores
step quickstart 200 240 "${py[@]}" -m automl run recipes/quickstart.yaml device=cuda --out /tmp/qs-$$
cp /tmp/qs-$$/results.json "$OUT/quickstart-results.json" 2>/dev/null
rm -rf /tmp/qs-$$
cat "$OUT/summary.txt"   # OUT holds 4 files: summary.txt, all.log, benchmarks.jsonl, quickstart-results.json
exit "$FAILED"
