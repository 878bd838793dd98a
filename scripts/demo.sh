#!/usr/bin/env bash
# The main job on the default data: sets up, builds, then hides a secret clip inside a cover
# clip with the GStreamer elements (stegohide → lossless FFV1/Matroska recording → stegoreveal),
# and hides/reveals/evaluates still photos with the `stego` CLI. Outputs go to out/.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
cargo build --release --workspace --locked
mkdir -p out
export GST_PLUGIN_PATH="$ROOT/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
STEGO=target/release/stego
SLIDES=${SLIDES:-4}            # secret: this many photos, 0.5 s each; the video lasts as long
W=${W:-320}; H=${H:-180}
FRAMES=$((SLIDES * 25 / 2))    # cover frames (25 fps)

echo "== video: hiding a slideshow of photos (secret) in Big Buck Bunny (cover), $FRAMES frames at ${W}x${H}"
# Secret clip: the PNG photos of data/images as a 2 fps slideshow of $SLIDES frames, scaled to
# the cover's size; secret-eos=eos ends the output with it. The container is recorded as RGB
# (BGRx) FFV1: lossless. (Through I420, videoconvert's default for avenc_ffv1, the recording
# would lose the hidden signal.)
rm -rf out/slides out/revealed_*.png; mkdir -p out/slides; i=0
for f in data/images/skimage_astronaut.png data/images/skimage_chelsea.png data/images/skimage_coffee.png; do
  cp "$f" "out/slides/$i.png"; i=$((i+1)); done
gst-launch-1.0 -q \
  stegohide name=h variant=fast secret-eos=eos ! videoconvert ! video/x-raw,format=BGRx ! avenc_ffv1 ! matroskamux ! \
    filesink location=out/container.mkv \
  filesrc location=data/video/bigbuckbunny.mp4 ! decodebin ! videoconvert ! videoscale ! \
    video/x-raw,format=RGB,width=$W,height=$H ! queue ! h.cover \
  multifilesrc location="out/slides/%d.png" index=0 stop-index=2 loop=true num-buffers=$SLIDES \
    caps=image/png,framerate=2/1 ! pngdec ! videoconvert ! videoscale ! \
    video/x-raw,format=RGB,width=$W,height=$H ! queue ! h.secret

if [ -s out/container.mkv ]; then
  gst-launch-1.0 -q filesrc location=out/container.mkv ! matroskademux ! avdec_ffv1 ! videoconvert ! \
    video/x-raw,format=RGB ! stegoreveal variant=fast ! videoconvert ! pngenc ! multifilesink location="out/revealed_%04d.png"
  echo "   container video: out/container.mkv; revealed frames: out/revealed_*.png"
fi

echo "== stills: hide, reveal, evaluate"
$STEGO hide --variant fast --cover data/images/skimage_astronaut.png --secret data/images/skimage_coffee.png -o out/container.png
$STEGO reveal --variant fast out/container.png -o out/revealed.png
# The held-out photos (never trained on).
$STEGO eval data/eval/photos --size 640x480 --lsb --variant fast --figure out/eval.png --csv out/eval.csv
$STEGO eval data/eval/footage --secrets data/eval/photos --size 640x480 --codec x264:23 --variant robust --figure out/eval-robust-x264.png --csv out/eval-robust-x264.csv
$STEGO eval data/eval/photos --size 320x240 --variant paper --figure out/eval-paper.png --csv out/eval-paper.csv
echo "outputs in $ROOT/out: container.png, revealed.png, eval.png, eval.csv (fast nets, 640x480, with LSB), eval-robust-x264.* (robust nets through x264), eval-paper.* (paper nets, 320x240), container.mkv, revealed_*.png"
