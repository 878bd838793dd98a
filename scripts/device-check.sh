#!/usr/bin/env bash
# One-command check of the GPU route on an NVIDIA machine that has no package registry, with
# files packed beforehand on the build machine. Within 8 minutes it
#   1. checks onnxruntime's CUDA provider against the CPU (the benchmark's preflight),
#   2. runs the throughput benchmark at 1080p and 720p: paper nets fp16 and fp32, fast nets,
#   3. times a candle CUDA training run (paper nets, batch 32, 128x128 crops, ~2 minutes):
#      step time and achieved TFLOP/s, then continues its checkpoint on the CPU (--resume),
# and writes every figure to docs/device-check-DATE.md (copied, with the run's checkpoint, to
# $OUT when that is set). Without a GPU it says so and exits 0.
#
#   scripts/device-check.sh                run the check (unpacks out/device-pack first)
#   scripts/device-check.sh pack           build machine: make out/device-pack/ (parts of at
#                                          most 60 MiB, SHA256SUMS) and say how to send them
#   scripts/device-check.sh pack --verify  join and unpack the parts in a temporary folder and
#                                          compare every file with what was packed
#   scripts/device-check.sh unpack         join, check and unpack the parts into .device/
#
# What travels (docs/gpu.md): the CUDA training binary (scripts/build-cuda.sh), the benchmark
# binary, onnxruntime-gpu's libraries (CUDA provider included), the GStreamer libraries the
# benchmark links and the training photos. The machine's own CUDA 13 libraries (cuBLAS, cuRAND,
# NVRTC, cuFFT, cuDNN 9, e.g. PyTorch's nvidia-* wheels) serve both; they are found by a search.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
log() { printf '[device-check] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

ORT_VERSION=1.31.1
PACK=out/device-pack          # the parts and their checksums
NAME=stego-device.tar.xz      # parts are $NAME.00, $NAME.01, ...
PART_MIB=60
DEV=.device                   # what the parts unpack to (git-ignored)

# ================================================================ packing (build machine)
# The benchmark binary as cargo builds it (the same binary measures the CPU and the GPU).
bench_binary() {
  cargo bench -p gst-plugin-stego --bench throughput --no-run --locked --message-format=json 2>/dev/null |
    .venv/bin/python -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "throughput" and m.get("executable"):
        print(m["executable"])'
}

# onnxruntime-gpu's shared libraries: from .ort/gpu (STEGO_GPU=1 scripts/setup.sh) or its wheel.
ort_gpu_dir() {
  if [ -f .ort/gpu/libonnxruntime_providers_cuda.so ]; then echo .ort/gpu; return; fi
  local d=.cuda/ort-gpu
  if [ ! -f $d/libonnxruntime_providers_cuda.so ]; then
    log "fetching onnxruntime-gpu==$ORT_VERSION (256 MB) for its libraries"
    mkdir -p .cuda/wheels $d
    .venv/bin/python -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      "onnxruntime-gpu==$ORT_VERSION" -d .cuda/wheels
    unzip -q -o -j .cuda/wheels/onnxruntime_gpu-$ORT_VERSION-*.whl 'onnxruntime/capi/libonnxruntime*.so*' -d $d
  fi
  echo $d
}

pack() {
  [ -x .venv/bin/python ] || die ".venv is missing: run scripts/setup.sh first"
  local training=target/cuda/release/training
  [ -x $training ] || die "$training is missing: run scripts/build-cuda.sh first"
  log "building the benchmark (cargo bench --no-run)"
  local bench; bench=$(bench_binary)
  [ -n "$bench" ] && [ -x "$bench" ] || die "cargo did not build the throughput benchmark: run 'cargo bench -p gst-plugin-stego --bench throughput --no-run' to see why"
  local ort; ort=$(ort_gpu_dir)
  [ -d data/images ] || die "data/images is missing: run scripts/setup.sh first"

  local stage; stage=$(mktemp -d); trap 'rm -rf "$stage"' RETURN
  local d=$stage/$DEV
  mkdir -p $d/bin $d/ort $d/gst/lib $d/gst/plugins $d/data
  # Without their line tables (half the CUDA binary's size); symbols stay.
  objcopy --strip-debug $training $d/bin/training
  objcopy --strip-debug "$bench" $d/bin/throughput
  cp -L $ort/libonnxruntime.so.$ORT_VERSION $ort/libonnxruntime_providers_shared.so $ort/libonnxruntime_providers_cuda.so $d/ort/
  ln -s libonnxruntime.so.$ORT_VERSION $d/ort/libonnxruntime.so
  # GStreamer for the benchmark's element rows, used there only where the machine lacks it:
  # the libraries the binary links (not the C library's), appsrc's library and two plugins.
  local gstdir; gstdir=$(pkg-config --variable=pluginsdir gstreamer-1.0)
  { ldd "$bench"; ldd "$gstdir/libgstapp.so"; ldd "$gstdir/libgstcoreelements.so"; } | awk '$3 ~ /^\// {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*|libgcc_s|libstdc\+\+)\.so' |
    while read -r l; do cp -L "$l" $d/gst/lib/; done
  cp "$gstdir"/libgst{coreelements,app}.so $d/gst/plugins/
  cp -r data/images $d/data/images
  ( cd "$stage" && find $DEV -type f ! -name MANIFEST.sha256 | sort | xargs sha256sum > MANIFEST.tmp && mv MANIFEST.tmp $DEV/MANIFEST.sha256 )

  rm -rf $PACK; mkdir -p $PACK
  log "compressing $(du -sh --apparent-size "$d" | cut -f1) (xz; a few minutes)"
  tar -C "$stage" -cf - $DEV | xz -6 -T0 -c | split -b ${PART_MIB}M -d -a 2 - $PACK/$NAME.
  cp "$d/MANIFEST.sha256" $PACK/MANIFEST.sha256
  ( cd $PACK && sha256sum $NAME.* > SHA256SUMS )
  local parts=($PACK/$NAME.*) n
  n=${#parts[@]}
  log "made $n parts in $PACK:"
  ls -l $PACK >&2
  cat >&2 <<EOF
[device-check] To run on the GPU machine (each command carries at most 64 MiB of git-ignored
files; git-ignored files stay for the next command only if it starts within 30 s, so send the
parts back to back and run the check with the last one):
EOF
  local i=0 p
  for p in "${parts[@]}"; do
    i=$((i + 1))
    if [ $i -eq 1 ]; then carry="[\"$PACK/SHA256SUMS\", \"$p\"]"; else carry="[\"$p\"]"; fi
    if [ $i -lt $n ]; then
      printf '  %d. carry %s, command: true\n' "$i" "$carry" >&2
    else
      printf '  %d. carry %s, command: bash scripts/device-check.sh\n' "$i" "$carry" >&2
    fi
  done
  log "check the parts here with: scripts/device-check.sh pack --verify"
}

# Joins the parts in $PACK after checking them against SHA256SUMS and unpacks them into $1;
# then checks every unpacked file against the packed manifest.
unpack_into() {
  local dest=$1
  [ -f $PACK/SHA256SUMS ] || die "no $PACK/SHA256SUMS: carry the parts made by 'scripts/device-check.sh pack' (with SHA256SUMS)"
  local missing; missing=$(cd $PACK && awk '{print $2}' SHA256SUMS | while read -r f; do [ -f "$f" ] || echo "$f"; done)
  [ -z "$missing" ] || die "parts missing in $PACK: $(echo $missing) (ignored files last 30 s between commands: send the parts back to back)"
  ( cd $PACK && sha256sum --quiet -c SHA256SUMS ) || die "a part in $PACK does not match SHA256SUMS: send it again"
  mkdir -p "$dest"
  rm -rf "${dest:?}/$DEV"
  cat $(cd $PACK && awk '{print "'$PACK'/" $2}' SHA256SUMS | sort) | xz -d -c | tar -C "$dest" -xf - \
    || die "the joined parts do not unpack: make them again with 'scripts/device-check.sh pack'"
  ( cd "$dest" && sha256sum --quiet -c $DEV/MANIFEST.sha256 ) || die "unpacked files differ from what was packed"
}

verify() {
  [ -f $PACK/MANIFEST.sha256 ] || die "no $PACK/MANIFEST.sha256: run 'scripts/device-check.sh pack' first"
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  local big; big=$(find $PACK -name "$NAME.*" -size +$((PART_MIB * 1024))k)
  [ -z "$big" ] && log "every part is at most $PART_MIB MiB" || die "parts over $PART_MIB MiB: $big"
  unpack_into "$tmp"
  cmp -s $PACK/MANIFEST.sha256 "$tmp/$DEV/MANIFEST.sha256" || die "the unpacked manifest differs from $PACK/MANIFEST.sha256"
  local files; files=$(wc -l < "$tmp/$DEV/MANIFEST.sha256")
  # The packed files against their sources here.
  local bench; bench=$(bench_binary)
  objcopy --strip-debug target/cuda/release/training "$tmp/training"
  objcopy --strip-debug "$bench" "$tmp/throughput"
  cmp "$tmp/training" "$tmp/$DEV/bin/training" || die "$DEV/bin/training differs from target/cuda/release/training"
  cmp "$tmp/throughput" "$tmp/$DEV/bin/throughput" || die "$DEV/bin/throughput differs from $bench"
  cmp "$(ort_gpu_dir)/libonnxruntime_providers_cuda.so" "$tmp/$DEV/ort/libonnxruntime_providers_cuda.so" || die "the packed CUDA provider differs from its source"
  diff -r data/images "$tmp/$DEV/data/images" >/dev/null || die "$DEV/data/images differs from data/images"
  log "ok: $(ls $PACK/$NAME.* | wc -l) parts, $(du -cb $PACK/$NAME.* | tail -1 | cut -f1) bytes, join and unpack to $files files that match their checksums and their sources"
}

case "${1:-check}" in
  pack)
    if [ "${2:-}" = --verify ]; then verify; else pack; fi
    exit 0 ;;
  unpack) unpack_into "$ROOT"; cp $PACK/SHA256SUMS $DEV/SHA256SUMS; log "unpacked into $DEV/"; exit 0 ;;
  check) ;;
  *) die "unknown command '$1': use no argument (run the check), pack, pack --verify or unpack" ;;
esac

# ================================================================ the check (GPU machine)
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed -n 1p)
elif compgen -G '/proc/driver/nvidia/gpus/*' >/dev/null; then
  gpu="$(sed -n 's/^Model:[[:space:]]*//p' /proc/driver/nvidia/gpus/*/information | sed -n 1p), driver $(sed -n 's/.*Kernel Module *\([0-9.]*\).*/\1/p' /proc/driver/nvidia/version)"
else
  echo "device-check: no NVIDIA GPU here (nvidia-smi -L finds none, no /proc/driver/nvidia/gpus): nothing to check; exiting."
  exit 0
fi
t_start=$(date +%s)
budget=${STEGO_DEVICE_CHECK_SECONDS:-470}   # the whole check, within 8 minutes
deadline=$((t_start + budget))
left() { echo $((deadline - $(date +%s))); }

# Unpacks parts that are new (their SHA256SUMS is kept in $DEV once unpacked).
if [ -f $PACK/SHA256SUMS ] && ! cmp -s $PACK/SHA256SUMS $DEV/SHA256SUMS 2>/dev/null; then
  log "unpacking $PACK into $DEV/"
  unpack_into "$ROOT"
  cp $PACK/SHA256SUMS $DEV/SHA256SUMS
fi
[ -f $DEV/MANIFEST.sha256 ] || die "nothing unpacked in $DEV/: on the build machine run scripts/build-cuda.sh and 'scripts/device-check.sh pack', then carry the parts (docs/gpu.md); with registry access use scripts/gpu-bench.sh instead"

mkdir -p docs
report=docs/device-check-$(date -u +%F).md
say() { printf '%s\n' "$*" | tee -a "$report"; }
: > "$report"

# ---------------------------------------------------------------- CUDA libraries of the machine
# Every folder holding a CUDA 13 / cuDNN 9 library (Python wheels, /usr/local/cuda, the system).
want=(libcublas.so.13 libcublasLt.so.13 libcudart.so.13 libcurand.so.10 libnvrtc.so.13 libcufft.so.12 libcudnn.so.9)
roots=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu /usr/local/lib /opt /root /home /usr/lib/python3)
for py in python3 python; do
  command -v $py >/dev/null 2>&1 && roots+=($($py -c 'import site, sys; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null || true))
done
libdirs=$(for r in "${roots[@]}"; do
  if [ -d "$r" ]; then
    find "$r" -maxdepth 9 \( -name 'libcublas.so.13' -o -name 'libcudnn.so.9' -o -name 'libcurand.so.10' -o -name 'libnvrtc.so.13' \
      -o -name 'libcufft.so.12' -o -name 'libcudart.so.13' \) -printf '%h\n' 2>/dev/null || true
  fi
done | sort -u)
# Beside the provider, as setup.sh does for .ort/gpu: the runtime preloads them from there.
for dir in $libdirs; do
  for f in "$dir"/lib{cu,nv}*.so*; do
    if [ -e "$f" ] && [ ! -e "$DEV/ort/$(basename "$f")" ]; then ln -s "$f" "$DEV/ort/"; fi
  done
done
export LD_LIBRARY_PATH="$ROOT/$DEV/ort${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export ORT_DYLIB_PATH="$ROOT/$DEV/ort/libonnxruntime.so"   # the packed GPU build, whatever .ort holds
missing_libs=$(for w in "${want[@]}"; do [ -e "$DEV/ort/$w" ] || echo "$w"; done)
# GStreamer from the pack only where the machine has none.
if ldd $DEV/bin/throughput 2>&1 | grep 'not found' >/dev/null; then
  export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$ROOT/$DEV/gst/lib"
  export GST_PLUGIN_SYSTEM_PATH_1_0="$ROOT/$DEV/gst/plugins" GST_REGISTRY_1_0="$ROOT/$DEV/gst/registry.bin" GST_REGISTRY_FORK=no
  gst_note="the packed GStreamer libraries (the machine has none)"
else
  gst_note="the machine's GStreamer"
fi

say "# Device check $(date -u '+%F %H:%M UTC')"
say ""
say "GPU: $gpu. Host: $(nproc) CPU cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)."
say "CUDA libraries found in: $(echo ${libdirs:-none})."
[ -z "$missing_libs" ] || say "Not found on this machine: $(echo $missing_libs)."
say "Benchmark GStreamer: $gst_note. Binaries and onnxruntime $ORT_VERSION (GPU build) from the pack ($(wc -l < $DEV/MANIFEST.sha256) files)."
failures=()
for b in $DEV/bin/training $DEV/ort/libonnxruntime_providers_cuda.so; do
  nf=$(ldd $b | sed -n 's/^[[:space:]]*\([^ ]*\) => not found.*/\1/p' | sort -u | tr '\n' ' ')
  [ -z "$nf" ] || { say "$b: libraries not found: $nf"; failures+=("$(basename $b) lacks ${nf% }"); }
done

# ---------------------------------------------------------------- 1+2: preflight and benchmark
say ""
say "## onnxruntime CUDA provider: preflight against the CPU, throughput at 1080p and 720p"
say ""
say "Each table: 30 timed frames per cell, one round, cells stopped after 60 s; the first lines"
say "are the preflight (provider against the CPU on two 128x128 inputs). Row (d) needs Python's"
say "onnxruntime-gpu, which the pack does not carry."
bench_until=$((t_start + budget * 40 / 100))
bench() {
  local l=$((bench_until - $(date +%s)))
  if [ "$l" -lt 20 ]; then say ""; say "Skipped for lack of time: $*"; return 0; fi
  say ""; say "### $*"; say ""
  local rc=0
  timeout "$l" $DEV/bin/throughput --execution-provider cuda --sizes 1920x1080,1280x720 --frames 30 \
    --rounds 1 --cell-timeout 60 --model-dir "$ROOT/models" "$@" > "$DEV/bench.out" 2> "$DEV/bench.err" || rc=$?
  tee -a "$report" < "$DEV/bench.out"
  if [ "$rc" -eq 124 ]; then say "(stopped at the time limit)";
  elif [ "$rc" -ne 0 ]; then
    say "Failed (exit $rc): $(grep -v '^$' "$DEV/bench.err" | tail -3 | tr '\n' ' ')"
    failures+=("bench $*")
  fi
}
bench --variant paper --precision fp16 --roles hide,reveal
bench --variant paper --precision fp32 --roles hide,reveal
bench --variant fast --precision fp16 --roles hide,reveal
bench --variant fast --precision fp32 --roles hide,reveal

# ---------------------------------------------------------------- 3: candle training on CUDA
say ""
BATCH=32 CROP=128
say "## candle training on CUDA: paper nets, batch $BATCH, ${CROP}x$CROP crops"
say ""
macs=$(( $(sed -n 's/^pub const HIDE_MACS_PER_PIXEL: u64 = \(.*\);/\1/p' training/src/nets/paper.rs | tr -d '_') + \
         $(sed -n 's/^pub const REVEAL_MACS_PER_PIXEL: u64 = \(.*\);/\1/p' training/src/nets/paper.rs | tr -d '_') ))
run=$DEV/run
rm -rf $run
train() { timeout "$1" $DEV/bin/training --out $run "${@:2}" > "$DEV/train.log" 2>&1; }
# step time = median of metrics.csv's per-step seconds (the last column) from step $1 on.
step_time() { awk -F, -v from="$1" 'NR > 1 && $1 >= from {print $NF}' $run/metrics.csv | sort -g |
  awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}'; }
# The run's step count (state.json's first "step").
run_step() { { grep -m1 -o '"step": *[0-9]*' $run/state.json | grep -o '[0-9]*$'; } || true; }
tflops() { awk -v m="$macs" -v t="$1" -v b=$BATCH -v c=$CROP 'BEGIN {printf "%.2f", 3 * 2 * m * b * c * c / t / 1e12}'; }
rc=0
# A short first session gives the step time; the second fills what is left of ~2 minutes.
train 90 --data $DEV/data/images --arch paper --batch-size $BATCH --crop $CROP --steps 100000 \
  --session-steps 20 --val-every 100000 --checkpoint-every 500 --no-export || rc=$?
if [ $rc -ne 0 ] || [ ! -f $run/metrics.csv ]; then
  say "The first training session failed (exit $rc): $(tail -3 $DEV/train.log | tr '\n' ' ')"
  failures+=("training on CUDA")
else
  say "$(grep -m1 '^device:' $DEV/train.log || echo 'device: (not printed)')"
  first=$(step_time 5); first=${first:-1}
  # About 2 minutes, leaving 90 s for the CPU step and the report.
  t_avail=$(( $(left) - 90 ))
  if [ $t_avail -gt 150 ]; then t_avail=150; elif [ $t_avail -lt 30 ]; then t_avail=30; fi
  n=$(awk -v a="$t_avail" -v s="$first" 'BEGIN {n = int((a - 15) / s); print (n < 10 ? 10 : n)}')
  t0=$(date +%s)
  train $((t_avail + 30)) --resume --session-steps "$n" --no-export || rc=$?
  wall=$(( $(date +%s) - t0 ))
  step=$(run_step)
  st=$(step_time 21)
  say "Session 1: 20 steps (first steps include kernel loading), median step $first s."
  say "Session 2 (--resume): $n steps asked, run at step ${step:-?} after ${wall} s wall (exit $rc)."
  if [ -n "$st" ]; then
    say "Step time (median of session 2): $st s = $(awk -v t="$st" -v b=$BATCH 'BEGIN {printf "%.1f", b / t}') pairs/s;" \
        "achieved $(tflops "$st") TFLOP/s (3 x forward: $macs MACs per pixel x 2 FLOP x $BATCH x $CROP x $CROP per step)."
  fi
  say "Loss at the last step: $(tail -1 $run/metrics.csv | cut -d, -f3); $(grep -m1 'validation' $DEV/train.log | sed 's/^.*validation/validation/' || true)"
  [ $rc -eq 0 ] || failures+=("training session 2 (exit $rc)")
  # The checkpoint continues on the CPU: the same binary without a visible GPU.
  from=${step:-0}
  rc=0
  CUDA_VISIBLE_DEVICES= train 90 --resume --session-steps 1 --no-export || rc=$?
  after=$(run_step)
  if [ $rc -eq 0 ] && [ "${after:-0}" -eq $((from + 1)) ] && grep -q '^device: Cpu' $DEV/train.log; then
    say "The checkpoint continues on the CPU: --resume with no visible GPU ran step $after on $(grep -m1 '^device:' $DEV/train.log | cut -d';' -f1) in $(step_time "$after") s."
  else
    say "--resume on the CPU failed (exit $rc, step ${from} -> ${after:-?}): $(tail -3 $DEV/train.log | tr '\n' ' ')"
    failures+=("CPU resume")
  fi
fi

say ""
say "Total: $(( $(date +%s) - t_start )) s. ${#failures[@]} failed part(s)${failures:+: $(IFS=';'; echo "${failures[*]}")}."
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  cp "$report" "$OUT/"
  [ -d $run ] && tar -C $DEV -czf "$OUT/device-run.tar.gz" --exclude=samples run
fi
echo "device-check: figures in $report"
[ ${#failures[@]} -eq 0 ]
