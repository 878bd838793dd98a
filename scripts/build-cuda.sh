#!/usr/bin/env bash
# Builds the CUDA training binary, target/cuda/release/training (`--features cuda`), on a
# machine without a GPU or a system CUDA toolkit: installs the CUDA 13.0 toolchain from PyPI
# wheels into .cuda/ (git-ignored), compiles candle's kernels for the GPU architecture
# CUDA_COMPUTE_CAP (default 90: H100/H200) and links against CUDA 13's cuBLAS, cuRAND, NVRTC
# and runtime. The CPU build in target/release is untouched (CARGO_TARGET_DIR=target/cuda).
# Idempotent: a second run only checks. Not part of CI. Needs scripts/setup.sh run first (.venv).
#
#   scripts/build-cuda.sh                     build (or check) target/cuda/release/training
#   CUDA_COMPUTE_CAP=80 scripts/build-cuda.sh build for A100 instead
#
# The binary finds the CUDA libraries through its run path ($ORIGIN/../../../.cuda/.../lib,
# i.e. this checkout's .cuda) or, where .cuda is absent (a machine the binary was carried to),
# through LD_LIBRARY_PATH, which wins when set. The driver's libcuda.so.1 comes from the
# machine it runs on; here the link uses a stub made from cudarc's list of driver functions.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
log() { printf '[build-cuda] %s\n' "$*" >&2; }

# The 13.0 line: nvcc 13.0 writes PTX ISA 9.0, which a CUDA 13.0 driver (580) can load;
# newer nvcc writes PTX that such drivers reject, and candle loads its kernels as PTX.
WHEELS=(nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
        nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.1.0.3
        nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88)
STAMP=.cuda/.ok-$(printf '%s\n' "${WHEELS[@]}" | sha256sum | cut -c1-12)
CU=$ROOT/.cuda/site/nvidia/cu13
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=$ROOT/target/cuda

# ---------------------------------------------------------------- toolchain (.cuda/site)
if [ ! -f "$STAMP" ]; then
  [ -x .venv/bin/python ] || { log ".venv is missing: run scripts/setup.sh first"; exit 1; }
  log "installing the CUDA 13.0 toolchain into .cuda/site: ${WHEELS[*]}"
  rm -rf .cuda/site; mkdir -p .cuda
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --target .cuda/site "${WHEELS[@]}"
  rm -f .cuda/.ok-*
  touch "$STAMP"
fi
export PATH="$CU/bin:$PATH"
export CUDA_ROOT=$CU   # cudarc's link search: $CUDA_ROOT/lib and $CUDA_ROOT/lib/stubs
nvcc_version=$(nvcc --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
[ "$nvcc_version" = 13.0 ] || { log "nvcc in $CU/bin reports CUDA '$nvcc_version', expected 13.0: delete .cuda and run again"; exit 1; }

# ---------------------------------------------------------------- link names and driver stub
# The wheels ship only versioned libraries (libcublas.so.13); the linker looks for libcublas.so.
for l in "$CU"/lib/lib{cublas,cublasLt,cudart,curand,nvrtc}.so.*; do
  case $l in *.alt.*|*builtins*) continue ;; esac
  base=${l%%.so.*}.so
  [ -e "$base" ] || ln -s "$(basename "$l")" "$base"
done
# cudarc's dynamic linking names libcuda (the driver), which no wheel ships: link against a stub
# with the driver's soname and the functions cudarc declares; the real driver replaces it at
# run time (the stub sits in lib/stubs, which is not on the run path).
if [ ! -f "$CU/lib/stubs/libcuda.so" ]; then
  cargo fetch --locked -q
  cudarc=$(cargo metadata --locked --format-version 1 --features training/cuda 2>/dev/null | .venv/bin/python -c '
import json, sys
pk = [p for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc"]
print(pk[0]["manifest_path"].rsplit("/", 1)[0] if pk else "")')
  [ -n "$cudarc" ] || { log "cudarc is not in Cargo.lock: cannot make the libcuda stub"; exit 1; }
  mkdir -p "$CU/lib/stubs"
  grep -o 'load::<_F>("cu[A-Za-z0-9_]*")' "$cudarc/src/driver/sys/mod.rs" | sed 's/.*("\(.*\)")/void \1(void) {}/' | sort -u \
    > .cuda/libcuda-stub.c
  log "libcuda stub: $(wc -l < .cuda/libcuda-stub.c) driver functions from $cudarc"
  cc -shared -fPIC -fno-builtin -w -Wl,-soname,libcuda.so.1 -o "$CU/lib/stubs/libcuda.so" .cuda/libcuda-stub.c
fi

# ---------------------------------------------------------------- build
# A first build reuses the CPU build's compiled dependencies: only what the cuda feature
# changes (cudarc, candle-kernels, candle-core, candle-nn, training) is compiled again.
if [ ! -d target/cuda/release ] && [ -d target/release/deps ]; then
  log "seeding target/cuda from the CPU build's dependencies"
  mkdir -p target/cuda/release
  cp -a target/release/{deps,build,.fingerprint} target/cuda/release/
fi
log "building target/cuda/release/training for sm_$CUDA_COMPUTE_CAP (CUDA $nvcc_version)"
# The run path goes to the final binary only ($ORIGIN = target/cuda/release).
cargo rustc --release --locked -p training --bin training --features cuda -- \
  -C 'link-arg=-Wl,-rpath,$ORIGIN/../../../.cuda/site/nvidia/cu13/lib'

bin=target/cuda/release/training
# The kernels (PTX) must be for the asked architecture.
targets=$(grep -a -o '\.target sm_[0-9a-z]*' "$bin" | sort -u | cut -d' ' -f2 | tr '\n' ' ')
case " $targets" in
  *" sm_${CUDA_COMPUTE_CAP}"*) ;;
  *) log "$bin holds no PTX for sm_$CUDA_COMPUTE_CAP (it has: ${targets:-none})"; exit 1 ;;
esac
if ! ldd "$bin" | grep 'libcublas.so.13 => /' >/dev/null; then
  ldd "$bin" >&2; log "$bin does not resolve CUDA 13's libcublas.so.13"; exit 1
fi
log "ok: $bin (PTX for ${targets% }); CUDA libraries:"
ldd "$bin" | grep -E 'libcu|libnvrtc' | sed 's/^[[:space:]]*/  /' >&2
