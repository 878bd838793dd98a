#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs every test of the workspace: the stego library and CLI,
# the training crate, and the GStreamer plugin; then runs the command blocks of README.md
# (scripts/check-docs.sh). This is what CI runs (.ci/run).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
export GST_PLUGIN_FEATURE_RANK=${GST_PLUGIN_FEATURE_RANK:-}
# Release mode: the tests run real networks and training steps; debug code is too slow for that.
cargo test --release --workspace --locked
# The README's commands, against the release binaries.
cargo build --release --workspace --locked
bash scripts/check-docs.sh
