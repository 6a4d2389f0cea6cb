#pragma once
// Skipping a test whose peer is missing, except where the run requires every peer.

#include <gtest/gtest.h>

#include <cstdlib>

// A test whose peer (bwrap, swaks…) is missing skips on a developer's machine, but fails
// where SWITCHBOARD_REQUIRE_PEERS is set (scripts/test.sh sets it): CI must not turn green
// without running it.
#define SKIP_OR_FAIL_WITHOUT(available, what)                                                 \
  do {                                                                                        \
    if (!(available)) {                                                                       \
      if (std::getenv("SWITCHBOARD_REQUIRE_PEERS") != nullptr) FAIL() << what " is required"; \
      GTEST_SKIP() << what " is missing here";                                                \
    }                                                                                         \
  } while (false)
