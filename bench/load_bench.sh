#!/usr/bin/env bash
# Load benchmark of the orchestrator: many groups, several messages each posted at once from
# ten clients, few slots; one-shot agents (answer their batch and exit) and agents that wait
# for follow-ups. It runs the Load suite of the integration tests
# (tests/integration/load_test.cpp) at a larger scale against the daemon binary given, and
# prints for each kind of agent the time to drain (every message answered exactly once, none
# left `processing`), the agent runs and the follow-ups piped. A failure of an assertion
# (a message unanswered or answered twice) is printed with what the store holds.
#
#   bench/load_bench.sh
#
# Environment (all optional):
#   LOAD_GROUPS=200              groups (one chat each)
#   LOAD_MESSAGES=5              messages per group
#   LOAD_SLOTS=5                 [agent] max_concurrent
#   LOAD_DEADLINE_S=600          give up after this long from the first post
#   BENCH_TEST_BUILD_DIR=build-test  a build with the tests (tests/integration_tests,
#                                tests/test_agent); an ASan build is fine, it is only the client
#   SWITCHBOARD_BIN=build/switchboard  the daemon measured (a Release build: scripts/build.sh);
#                                default: the test build's own binary
#   BENCH_KEEP=DIR               keep the daemon logs and the agents' run logs there
set -euo pipefail

cd "$(dirname "$0")/.."
TEST_BUILD=${BENCH_TEST_BUILD_DIR:-build-test}
TESTS=$TEST_BUILD/tests/integration_tests

die() {
  printf 'load_bench: %s\n' "$*" >&2
  exit 1
}

[[ -x $TESTS ]] || die "no $TESTS: build it (cmake --build $TEST_BUILD --target integration_tests)"
if [[ -n ${SWITCHBOARD_BIN:-} ]]; then
  [[ -x $SWITCHBOARD_BIN ]] || die "no switchboard binary at $SWITCHBOARD_BIN"
  export SWITCHBOARD_LOAD_BINARY=$(realpath "$SWITCHBOARD_BIN")
fi
export SWITCHBOARD_LOAD_GROUPS=${LOAD_GROUPS:-200}
export SWITCHBOARD_LOAD_MESSAGES=${LOAD_MESSAGES:-5}
export SWITCHBOARD_LOAD_SLOTS=${LOAD_SLOTS:-5}
export SWITCHBOARD_LOAD_DEADLINE_S=${LOAD_DEADLINE_S:-600}
[[ -n ${BENCH_KEEP:-} ]] && export SWITCHBOARD_LOAD_KEEP=$(realpath -m "$BENCH_KEEP")
export SWITCHBOARD_REQUIRE_PEERS=1  # no silent skip without bwrap

printf '== switchboard load benchmark: %s groups x %s messages, %s slots\n' \
  "$SWITCHBOARD_LOAD_GROUPS" "$SWITCHBOARD_LOAD_MESSAGES" "$SWITCHBOARD_LOAD_SLOTS" >&2
printf '   daemon: %s; %s cores\n' "${SWITCHBOARD_LOAD_BINARY:-the test build}" "$(nproc)" >&2
"$TESTS" --gtest_filter='Load.*' --gtest_brief=1
