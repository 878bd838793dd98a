#!/usr/bin/env bash
# Runs the command blocks of README.md (```sh, ```bash and the `$ ` lines of ```console) in
# order, as one script, against the built release binaries (target/release/stego,
# target/release/training, gst-launch-1.0 with the plugin in target/release), in a scratch
# folder that links the project's data/, models/ and target/release. Fails on the first
# command that fails. Build first (`cargo build --release --workspace`); scripts/test.sh runs
# it after the tests.
#
# A block is run as written unless the line `<!-- check-docs: NAME -->` stands right before
# it; then the case below decides, and says why:
#   top         skipped: the two top-level commands (set up + demo, set up + every test) run
#               this checker themselves; running them here would recurse.
#   webcam      skipped: needs a camera (/dev/video0) and records until Ctrl-C; the `file`
#               block runs the same elements and the same lossless recording chain.
#   gpu         skipped: needs an NVIDIA GPU, and the CUDA build takes about half an hour.
#   file        run as written (132 frames at 320x180; a few seconds with the fast nets).
#   train       short variant: `cargo run --release -p training` trains 20 steps instead of
#               4,000 (validation and checkpoints every 10), so the next command has models.
#   train-more  short variant: 20 steps instead of 20,000 (30 when continued), batch 8.
# In every block `cargo run --release -p training [--]` becomes target/release/training.
#
#   bash scripts/check-docs.sh [README.md]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOC=$(realpath "${1:-$ROOT/README.md}")
for bin in stego training libgststego.so; do
  if [ ! -e "$ROOT/target/release/$bin" ]; then
    echo "check-docs: $ROOT/target/release/$bin is missing: build first (cargo build --release --workspace)" >&2
    exit 1
  fi
done
command -v gst-launch-1.0 >/dev/null || { echo "check-docs: gst-launch-1.0 is missing: run scripts/setup.sh" >&2; exit 1; }

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/stego-check-docs.XXXXXX")
# CHECK_DOCS_KEEP=1 keeps the scratch folder (its log and run.sh) for a look afterwards.
if [ "${CHECK_DOCS_KEEP:-0}" = 1 ]; then echo "check-docs: scratch folder $SCRATCH" >&2; else trap 'rm -rf "$SCRATCH"' EXIT; fi
mkdir -p "$SCRATCH/target"
ln -s "$ROOT/target/release" "$SCRATCH/target/release"
ln -s "$ROOT/data" "$SCRATCH/data"
ln -s "$ROOT/models" "$SCRATCH/models"

# The blocks, each as `#@ block N line L marker M` followed by its lines.
awk '
  /^<!-- check-docs: [a-z-]+ -->$/ { marker = $3; next }
  !inblock && /^```(sh|bash|console)[ \t]*$/ { inblock = 1; n++; console = ($0 ~ /console/);
    printf "#@ block %d line %d marker %s\n", n, NR, (marker == "" ? "-" : marker); marker = ""; next }
  inblock && /^```/ { inblock = 0; next }
  inblock { if (!console) print; else if (sub(/^\$ /, "")) print; next }
  /[^ \t]/ { marker = "" }
' "$DOC" > "$SCRATCH/blocks"

# The script: every block, changed or skipped as its marker says.
{
  echo 'set -euxo pipefail'  # -x: the log shows each command as it runs
  block="" skip=""
  while IFS= read -r line; do
    if [[ $line == "#@ block "* ]]; then
      read -r _ _ n _ l _ marker <<<"$line"
      [ "$marker" = - ] && marker=""
      skip=""
      case $marker in
        top) skip="the top-level commands run this checker (would recurse)" ;;
        webcam) skip="needs a camera and runs until Ctrl-C (the file block covers the pipeline)" ;;
        gpu) skip="needs an NVIDIA GPU; scripts/build-cuda.sh compiles CUDA kernels for half an hour" ;;
        ""|file|train|train-more) ;;
        *) echo "check-docs: $DOC line $l: unknown marker '$marker': add it to scripts/check-docs.sh" >&2; exit 1 ;;
      esac
      if [ -n "$skip" ]; then
        echo "echo '== block $n (README line $l, $marker): skipped: $skip' >&2"
      else
        echo "echo '== block $n (README line $l${marker:+, $marker})' >&2"
      fi
      block=$marker
      continue
    fi
    [ -n "$skip" ] && continue
    case $block in
      train) line=$(sed -E 's#^cargo run --release -p training$#cargo run --release -p training -- --steps 20 --val-every 10 --checkpoint-every 10#' <<<"$line") ;;
      train-more) line=$(sed -E 's#--steps 20000#--steps 20#; s#--steps 30000#--steps 30#; s#--batch-size 32#--batch-size 8#; s#(--init-from [^ ]+ .*--lr [^ ]+)#\1 --steps 20#' <<<"$line") ;;
    esac
    line=$(sed -E 's#cargo run --release -p training( --)?#"$ROOT/target/release/training"#' <<<"$line")
    printf '%s\n' "$line"
  done < "$SCRATCH/blocks"
} > "$SCRATCH/run.sh"

cd "$SCRATCH"
start=$SECONDS
if ! ROOT="$ROOT" bash "$SCRATCH/run.sh" > "$SCRATCH/log" 2>&1; then
  tail -n 40 "$SCRATCH/log" >&2
  echo "check-docs: FAILED: the last command above (in the block named by the last '==' line of $DOC) failed" >&2
  exit 1
fi
grep '^== ' "$SCRATCH/log" >&2
echo "check-docs: every command block of $DOC ran ($((SECONDS - start)) s)" >&2
