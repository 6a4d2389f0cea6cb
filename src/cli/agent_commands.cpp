// Placeholder entry points, replaced by src/agent/ and src/mcp/ in this change.
#include <iostream>

#include "cli/commands.h"

namespace sb::cli {
int mcp() {
  std::cerr << "switchboard mcp: not built yet\n";
  return 1;
}
}  // namespace sb::cli
