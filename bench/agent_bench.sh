#!/usr/bin/env bash
# The built-in agent's start-up, peak memory and dispatch latency; see bench/agent_bench.py
# and docs/performance.md.
#
#   bench/agent_bench.sh
#
# Environment (all optional):
#   BENCH_RUNS=30             runs per agent / samples per runtime
#   BENCH_WARMUP=2            uncounted runs before them
#   BENCH_RUNTIMES=bwrap,none runtimes for the through-the-daemon part
#   BENCH_BUILD_DIR=build     build directory (built with scripts/build.sh if it has no binary)
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD_DIR=${BENCH_BUILD_DIR:-build}
SB=$BUILD_DIR/switchboard
if [[ ! -x /usr/bin/time ]]; then
  echo "installing GNU time (peak RSS of each agent run) ..." >&2
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends time >/dev/null
fi
if [[ ! -x $SB ]]; then
  echo "building switchboard (scripts/build.sh $BUILD_DIR) ..." >&2
  scripts/build.sh "$BUILD_DIR" >&2
fi
exec python3 bench/agent_bench.py --switchboard "$SB" --mock tests/support/mock_model_server.py \
  --runs "${BENCH_RUNS:-30}" --warmup "${BENCH_WARMUP:-2}" --runtimes "${BENCH_RUNTIMES:-bwrap,none}"
