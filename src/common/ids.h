#pragma once
// Random identifiers for runs, tasks and the like: a prefix and 12 hex digits (48 bits),
// unique enough for one installation and readable in logs.

#include <string>
#include <string_view>

namespace sb {

// "run-3fa94c0e12ab" for random_id("run"). Call on one thread at a time (the event loop).
std::string random_id(std::string_view prefix);

}  // namespace sb
