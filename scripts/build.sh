#!/usr/bin/env bash
# Configures and builds switchboard. Usage: scripts/build.sh [BUILD_DIR] [cmake args...]
# The default BUILD_DIR is build/ (an optimised build with tests and benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
