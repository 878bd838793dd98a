#!/usr/bin/env bash
# GPU benchmark: on a machine with an NVIDIA GPU and a CUDA 13 driver, installs the GPU
# runtime (onnxruntime-gpu 1.31.1 with its CUDA 13 / cuDNN 9 wheels, via scripts/setup.sh),
# builds, then runs the side-by-side throughput benchmark on the CUDA provider at 1080p and
# 720p (paper and fast nets, float16 and float32) within 5 minutes and prints the tables.
# Without a GPU it says so and exits 0.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-bench: no NVIDIA GPU here (nvidia-smi -L finds none): nothing to measure; exiting."
  exit 0
fi
nvidia-smi -L
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
t0=$(date +%s)
STEGO_GPU=1 bash scripts/setup.sh
# The Python row (d) needs onnxruntime-gpu and the same CUDA wheels in a venv of its own.
if [ ! -f .venv-gpu/.ok ]; then
  python3 -m venv .venv-gpu
  .venv-gpu/bin/python -m pip install -q --disable-pip-version-check numpy "onnxruntime-gpu==1.31.1"
  reqs=$(.venv-gpu/bin/python -m pip show -f onnxruntime-gpu >/dev/null 2>&1; \
         .venv-gpu/bin/python - <<'PY'
import importlib.metadata as m
print(" ".join(r.split(";")[0].replace(" ", "") for r in (m.requires("onnxruntime-gpu") or []) if r.startswith("nvidia-")))
PY
)
  [ -n "$reqs" ] && .venv-gpu/bin/python -m pip install -q --disable-pip-version-check $reqs
  touch .venv-gpu/.ok
fi
cargo bench -p gst-plugin-stego --bench throughput --no-run --locked
echo "gpu-bench: setup and build took $(( $(date +%s) - t0 )) s"
export ORT_DYLIB_PATH="$ROOT/.ort/gpu/libonnxruntime.so"
export LD_LIBRARY_PATH="$ROOT/.ort/gpu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export STEGO_BENCH_PYTHON="$ROOT/.venv-gpu/bin/python"
# The benchmark runs within 5 minutes (STEGO_GPU_BENCH_SECONDS), most telling rows first: the paper
# nets hiding (the 120 fps at 1080p target) in float16 and float32, the paper reveal net, then the
# fast nets in float16 and float32; one round of 30 frames per cell, each cell stopped after 90 s. Each table row prints
# when its four cells are done; what the time does not reach is named as skipped.
budget=${STEGO_GPU_BENCH_SECONDS:-300}
start=$(date +%s)
deadline=$((start + budget))
bench() {
  local left=$((deadline - $(date +%s)))
  if [ "$left" -lt 20 ]; then echo "gpu-bench: skipped for lack of time: $*"; return 0; fi
  local rc=0
  timeout "$left" cargo bench -p gst-plugin-stego --bench throughput --locked -- \
    --execution-provider cuda --sizes 1920x1080,1280x720 --frames 30 --rounds 1 --cell-timeout 90 "$@" || rc=$?
  if [ "$rc" -eq 124 ]; then echo "gpu-bench: stopped at the ${budget} s limit: $*";
  elif [ "$rc" -ne 0 ]; then echo "gpu-bench: the benchmark failed (exit $rc; its error is above): $*"; exit 1; fi
}
bench --variant paper --precision fp16 --roles hide
bench --variant paper --precision fp32 --roles hide
bench --variant paper --precision fp32 --roles reveal
bench --variant fast --precision fp16 --roles hide,reveal
bench --variant fast --precision fp32 --roles hide,reveal
echo "gpu-bench: benchmark took $(( $(date +%s) - start )) s"
