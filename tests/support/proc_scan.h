#pragma once
// Finding processes by a word of their command line, to check that tests leave none behind.

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <thread>

namespace sb::test {

// True if a live process (not a zombie: its command line is empty) has `marker` in its
// command line.
inline bool process_with_marker_exists(std::string_view marker) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(it->path() / "cmdline", std::ios::binary);
    std::string cmdline(std::istreambuf_iterator<char>(in), {});
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (cmdline.find(marker) != std::string::npos) return true;
  }
  return false;
}

// Waits up to `timeout` for every process with `marker` to be gone (a SIGKILLed process
// that is not our child disappears a moment later, when the kernel and its reaper are done).
inline bool processes_with_marker_gone(
    std::string_view marker, std::chrono::milliseconds timeout = std::chrono::seconds(2)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (process_with_marker_exists(marker)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace sb::test
