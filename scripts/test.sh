#!/usr/bin/env bash
# One command from a fresh clone to a full test run: installs the packages (build, tests,
# test peers), builds build/switchboard, builds the test suite with AddressSanitizer and
# UndefinedBehaviorSanitizer in build-test/, runs every test with CTest, then the fuzz
# harnesses' smoke run (scripts/fuzz.sh smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
# The release binary only (the test suite is built once, below, with the sanitizers).
scripts/build.sh build -DSWITCHBOARD_TESTS=OFF -DSWITCHBOARD_BENCH=OFF
scripts/build.sh build-test -DCMAKE_BUILD_TYPE=Debug -DSWITCHBOARD_SANITIZE=ON \
  -DSWITCHBOARD_STATIC_DEPS=OFF -DSWITCHBOARD_BENCH=OFF
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Tests whose peer (bwrap, swaks, the mail servers) is missing fail instead of skipping.
export SWITCHBOARD_REQUIRE_PEERS=1
ctest --test-dir build-test --output-on-failure -j"$(nproc)" "$@"
# Every parser of outside input under libFuzzer for a few seconds each (docs/fuzzing.md): a
# crash, leak or timeout fails the run. SWITCHBOARD_SKIP_FUZZ=1 leaves it out of a local run.
if [[ "${SWITCHBOARD_SKIP_FUZZ:-0}" != 1 ]]; then
  scripts/fuzz.sh smoke
fi
