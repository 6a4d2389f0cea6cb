#!/usr/bin/env bash
# One command from a fresh clone to a full test run: installs the packages (build, tests,
# test peers), builds build/switchboard, builds the test suite with AddressSanitizer and
# UndefinedBehaviorSanitizer in build-test/, and runs every test with CTest.
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
