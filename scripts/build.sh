#!/usr/bin/env bash
# Configures and builds switchboard. Usage: scripts/build.sh [BUILD_DIR] [cmake args...]
# The default BUILD_DIR is build/ (an optimised build with tests and benchmarks; later
# cmake args override these defaults, and every call sets them again, so a directory
# configured once without tests gets them back on the next plain call).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DSWITCHBOARD_TESTS=ON -DSWITCHBOARD_BENCH=ON \
  -DSWITCHBOARD_SANITIZE=OFF -DSWITCHBOARD_STATIC_DEPS=ON "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
