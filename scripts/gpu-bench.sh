#!/usr/bin/env bash
# GPU benchmark: on a machine with an NVIDIA GPU and a CUDA 13 driver, installs the GPU
# runtime (onnxruntime-gpu 1.31.1 with its CUDA 13 / cuDNN 9 wheels, via scripts/setup.sh),
# builds, then runs the side-by-side throughput benchmark on the CUDA provider at 720p and
# 1080p (paper nets in float32 and float16, fast nets) and prints the tables. Without a GPU it says so and exits 0.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-bench: no NVIDIA GPU here (nvidia-smi -L finds none): nothing to measure; exiting."
  exit 0
fi
nvidia-smi -L
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
export ORT_DYLIB_PATH="$ROOT/.ort/gpu/libonnxruntime.so"
export LD_LIBRARY_PATH="$ROOT/.ort/gpu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export STEGO_BENCH_PYTHON="$ROOT/.venv-gpu/bin/python"
# Within 5 minutes (one round per cell): the paper nets (float32: hide and reveal; float16: hide) and the fast nets
# (hide), at 720p and 1080p.
bench() { cargo bench -p gst-plugin-stego --bench throughput --locked -- \
  --execution-provider cuda --sizes 1280x720,1920x1080 --frames 30 --rounds 1 "$@"; }
start=$(date +%s)
timeout 300 bash -c "$(declare -f bench); bench --roles hide,reveal --variant paper --precision fp32 && \
  bench --roles hide --variant paper --precision fp16 && bench --roles hide --variant fast --precision fp32"
echo "gpu-bench: benchmark took $(( $(date +%s) - start )) s"
