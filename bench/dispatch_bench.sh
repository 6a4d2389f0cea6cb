#!/usr/bin/env bash
# Dispatch-overhead benchmark of switchboard's orchestrator.
#
#   bench/dispatch_bench.sh
#
# Measures, for [agent] runtime = "bwrap" and "none", over many messages each answered by a
# fresh agent process (the test agent, tests/support/test_agent.cpp): the time from a
# message's POST (acknowledged after its commit) to the agent process starting, to the
# agent's first model request arriving at a local mock model server (through the daemon's
# model proxy), and to the agent's reply appearing in the chat; median, p99 and max. Prints
# them next to the seed's documented design figure (a 2 s database poll, then a container
# start per run). See bench/dispatch_bench.py and docs/performance.md.
#
# Environment (all optional):
#   BENCH_RUNS=100            samples per runtime
#   BENCH_WARMUP=3            uncounted samples before them
#   BENCH_RUNTIMES=bwrap,none runtimes to measure (bwrap is skipped if it cannot sandbox here)
#   BENCH_BUILD_DIR=build     build directory (built with scripts/build.sh if it has no binary)
#   SWITCHBOARD_BIN=...       daemon to measure (default $BENCH_BUILD_DIR/switchboard)
#   BENCH_KEEP=DIR            keep the daemon logs, the mock's request log and the raw samples
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD_DIR=${BENCH_BUILD_DIR:-build}
SB=${SWITCHBOARD_BIN:-$BUILD_DIR/switchboard}
AGENT=$BUILD_DIR/tests/test_agent
PY=python3

log() { printf '%s\n' "$*" >&2; }
die() {
  log "dispatch_bench: $*"
  exit 1
}

command -v $PY >/dev/null || die "python3 is missing (apt-get install python3)"

if [[ -z ${SWITCHBOARD_BIN:-} && ! -x $SB ]] || [[ ! -x $AGENT ]]; then
  if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
    log "building switchboard and the test agent (scripts/build.sh $BUILD_DIR) ..."
    scripts/build.sh "$BUILD_DIR" || die "the build failed"
  else
    # The test agent exists only with -DSWITCHBOARD_TESTS=ON.
    targets=(test_agent)
    [[ -z ${SWITCHBOARD_BIN:-} ]] && targets+=(switchboard)
    log "building ${targets[*]} in $BUILD_DIR ..."
    cmake --build "$BUILD_DIR" -j"$(nproc)" --target "${targets[@]}" >/dev/null ||
      die "cannot build ${targets[*]} in $BUILD_DIR (configured with -DSWITCHBOARD_TESTS=ON?)"
  fi
fi
[[ -x $SB ]] || die "no switchboard binary at $SB"
[[ -x $AGENT ]] || die "no test agent at $AGENT"
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
if [[ -z ${SWITCHBOARD_BIN:-} && $BUILD_TYPE != Release ]]; then
  log "warning: $BUILD_DIR is a '${BUILD_TYPE:-unknown}' build, not Release; figures will be high"
fi
log "== switchboard dispatch benchmark"
log "   binary: $SB ($("$SB" --version 2>/dev/null | head -1 || echo '?'), ${BUILD_TYPE:-?} build)"
log "   agent:  $AGENT"

args=(--switchboard "$SB" --agent "$AGENT" --mock tests/support/mock_model_server.py
  --runs "${BENCH_RUNS:-100}" --warmup "${BENCH_WARMUP:-3}"
  --runtimes "${BENCH_RUNTIMES:-bwrap,none}")
[[ -n ${BENCH_KEEP:-} ]] && args+=(--keep "$BENCH_KEEP")
exec $PY bench/dispatch_bench.py "${args[@]}"
