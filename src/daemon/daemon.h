#pragma once
// The daemon: opens the store, starts the API, runs the event loop until SIGTERM or SIGINT,
// then shuts down in order (stop accepting, finish requests in flight, finish queued
// writes, close the store). docs/operations.md describes it for operators.

#include "config/config.h"

namespace sb {

// Runs until a stop signal. Returns the process exit code: 0 after a clean shutdown, 2 for
// a configuration that cannot run (a public address without a token), 1 when the data
// directory is locked by another daemon (data_lock.h) or the store or the listener cannot be
// opened.
int run_daemon(const Config& config);

}  // namespace sb
