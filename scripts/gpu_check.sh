#!/usr/bin/env bash
# GPU check for a borrowed GPU machine: one run, one JSON, finished in at most 8 minutes.
#
#   bash scripts/gpu_check.sh [--out FILE.json] [--device cuda|cpu] [--configs NAME ...] [--sections ...] [...]
#   (all options: python -m siamtrt.benchmarks.gpu_check --help; docs/tensorrt.md "GPU check")
#
# Checks, each section in its own process and time box (cuda_layer 60 s, kernel 210 s, torch_timing 150 s, whole run
# 450 s, plus this script's hard stop at 470 s):
#   cuda_layer    siamtrt.gpu.cuda: DeviceBuffer / PinnedBuffer / Stream round trips, memory release, stream
#                 ordering, CudaGraph capture + replay (memcpy sequence and a DepthwiseXCorr launch) vs host copies
#   kernel        the DepthwiseXCorr kernel built with nvcc for the GPU's sm (sm_90 on H100/H200) + the NVRTC path,
#                 float32 and float16, every architecture's correlation shapes (batch 1 and 8, the 831 long-term
#                 search), vs siamtrt.plugin.dwxcorr_reference
#   torch_timing  eager PyTorch FP16 / FP32 search-branch times per architecture (random weights, batch 1, median ms)
#
# Exit: 0 every check passed; 1 a check failed, errored or ran out of time; 2 bad arguments; 3 no CUDA device (the
# JSON says why, every section "skipped"); 4 incomplete (something skipped on a GPU machine, e.g. nvcc missing).
#
# Needs only what the lent H100/H200 image has: python3 with numpy, torch (CUDA build), cuda-bindings (cuda-python)
# and nvcc. No TensorRT, no OpenCV, no network, nothing to carry (no wheels). Run it from the repository root of a
# copy of this repository; it sets PYTHONPATH itself, nothing is installed.
#
# With the device tool (one call; ~2 minutes of machine start come on top of the run):
#   run(command='bash scripts/gpu_check.sh --out "$OUT/gpu_check.json"', timeout_s=540)          # carry: nothing
# The JSON comes back under files_at; the last stderr lines summarise it. A shorter rerun of one section:
#   run(command='bash scripts/gpu_check.sh --sections kernel --out "$OUT/gpu_check.json"', timeout_s=300)
# Dry run on a CPU machine (nvcc build, kernel cases through a CPU stand-in, torch FP32 on the CPU):
#   bash scripts/gpu_check.sh --device cpu --configs siamrpn_alex_dwxcorr --batch-n 2
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# the run starts in the checkout (python -m would import a siamtrt/ of the caller's folder first): a relative --out
# names a file of the caller's folder, so it is made absolute first (it was written into the checkout instead)
args=() want_out=0
for a in "$@"; do
    if [ "$want_out" = 1 ] && [ "${a#/}" = "$a" ]; then a="$PWD/$a"; fi
    case "$a" in --out=[!/]*) a="--out=$PWD/${a#--out=}" ;; esac
    want_out=0; [ "$a" = "--out" ] && want_out=1
    args+=("$a")
done
cd "$ROOT" || exit 1
# NVRTC (the plugin's fallback compiler) looks for cuda_fp16.h under $CUDA_HOME: point it at nvcc's toolkit
if [ -z "${CUDA_HOME:-}" ] && command -v nvcc >/dev/null 2>&1; then
    toolkit="$(cd "$(dirname "$(command -v nvcc)")/.." && pwd)"
    [ -f "$toolkit/include/cuda_fp16.h" ] && export CUDA_HOME="$toolkit"
fi
# the run stops itself inside its 450 s budget; this is the hard stop (the JSON is rewritten after every section)
timeout -k 5 470 "$PYTHON" -m siamtrt.benchmarks.gpu_check ${args[@]+"${args[@]}"}
rc=$?
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "gpu_check: stopped at the 470 s hard limit; the JSON holds the sections finished before it" >&2
    exit 1
fi
exit "$rc"
