#!/usr/bin/env bash
# One command from a fresh clone to a running daemon: installs the packages, builds, and
# starts `switchboard run` with its built-in defaults (data in ./data, API on
# 127.0.0.1:8114). Extra arguments go to `switchboard run` (e.g. --config FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build -DSWITCHBOARD_TESTS=OFF -DSWITCHBOARD_BENCH=OFF
exec build/switchboard run "$@"
