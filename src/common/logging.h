#pragma once
// Logging set-up: spdlog's default logger writes to stderr, plain or one JSON object per
// line, with UTC timestamps. Call once at start-up, before any other thread logs.

#include <string>

#include "common/result.h"
#include "config/config.h"

namespace sb {

// Sets level and format. Error if the level is unknown.
Result<bool> setup_logging(const LogConfig& config);

}  // namespace sb
