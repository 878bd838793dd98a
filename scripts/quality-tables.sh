#!/usr/bin/env bash
# Prints the README's quality tables (markdown) by running `stego eval` on the evaluation set
# that scripts/setup.sh fetches into data/eval (photos and footage that no training, validation
# or choice between runs has used):
#   1. every variant at the sizes people stream (whole photos scaled and centre-cropped to
#      320x240, 640x480, 1280x720; the 640x272 video frames at their size), beside 3-bit and
#      4-bit LSB substitution on the same pairs;
#   2. recordings: camera footage (768x576 frames of vtest.avi, scaled to 640x480) as covers,
#      the photos as secrets, each container recorded with the real encoder (`--codec`;
#      x264:Q is x264enc pass=qual, a rate factor; x264qp:Q a constant quantizer).
#
#   scripts/quality-tables.sh [--model-dir DIR] [--variants "fast robust paper"]
#
# Needs the release build (cargo build --release) and data/eval (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
STEGO=${STEGO:-target/release/stego}
model_dir=models
variants="fast robust paper"
while [ $# -gt 0 ]; do
  case "$1" in
    --model-dir) model_dir=$2; shift 2 ;;
    --variants) variants=$2; shift 2 ;;
    *) echo "quality-tables.sh: unknown option $1 (use --model-dir DIR, --variants \"fast robust paper\")" >&2; exit 2 ;;
  esac
done
[ -x "$STEGO" ] || { echo "quality-tables.sh: $STEGO is missing: run cargo build --release first" >&2; exit 1; }
[ -d data/eval/photos ] && [ -f data/eval/footage/.ok ] || { echo "quality-tables.sh: data/eval is missing: run bash scripts/setup.sh first" >&2; exit 1; }
fig=$(mktemp -d); trap 'rm -rf "$fig"' EXIT

# `stego eval` rows -> "| label | cover APD | cover PSNR | secret APD | secret PSNR |"
rows() { # label-prefix, then eval arguments
  local label=$1; shift
  "$STEGO" eval "$@" --figure "$fig/f.png" 2>/dev/null | awk -v label="$label" '
    /^mean of/ { n = NF; printf "| %s | %.2f | %.2f | %.2f | %.2f |\n", label, $(n-6), $(n-5), $(n-2), $(n-1) }
    /-bit LSB substitution/ { n = NF; printf "| %s LSB | %.2f | %.2f | %.2f | %.2f |\n", $1, $(n-6), $(n-5), $(n-2), $(n-1) }'
}

echo "### Stream sizes (held-out photos; the video frames at 640x272)"
echo
echo "| size | method | cover APD | cover PSNR dB | secret APD | secret PSNR dB |"
echo "|---|---|---|---|---|---|"
for size in 320x240 640x480 1280x720 video; do
  if [ "$size" = video ]; then src=(data/eval/video); label="video 640x272"; else src=(data/eval/photos --size "$size"); label=$size; fi
  first=1
  for v in $variants; do
    lsb=(); [ $first = 1 ] && lsb=(--lsb)
    out=$(rows "$v" "${src[@]}" --variant "$v" --model-dir "$model_dir" "${lsb[@]}")
    # model rows first, LSB rows after the last variant
    echo "$out" | grep -v "LSB" | sed "s/^| /| $label | /"
    [ $first = 1 ] && lsbrows=$(echo "$out" | grep "LSB" | sed "s/^| /| $label | /")
    first=0
  done
  echo "$lsbrows"
done
echo
echo "### Recordings (footage covers at 640x480, photo secrets; cover measured before the recording)"
echo
echo "| recording | method | cover APD | cover PSNR dB | secret APD | secret PSNR dB |"
echo "|---|---|---|---|---|---|"
for codec in none x264:18 x264:23 x264:28 x264 x264qp:23 x264qp:29 jpeg:90 jpeg:75; do
  for v in $variants; do
    [ "$v" = paper ] && continue
    rows "$v" data/eval/footage --secrets data/eval/photos --size 640x480 --codec "$codec" --variant "$v" --model-dir "$model_dir" | sed "s/^| /| $codec | /"
  done
done
