#pragma once
// The agent's side of `input/` (docs/agent-protocol.md#follow-ups-and-closing-input): the
// follow-up messages the host hands a running agent and its close request.
//
// Files are taken in name order (the host's names sort by arrival); names starting with '.'
// are temporaries and never read. Every taken file is deleted. The host writes no follow-up
// after `_close`, so messages found together with it were sent before it and are still due.

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace sb::agent {

struct InboxBatch {
  std::vector<std::string> messages;  // the `text` of each follow-up, in order
  bool close = false;                 // `_close` was there (now deleted)
  std::vector<std::string> warnings;  // files that were not valid follow-ups (deleted)
};

class InputInbox {
 public:
  explicit InputInbox(std::filesystem::path input_dir);
  ~InputInbox();
  InputInbox(const InputInbox&) = delete;
  InputInbox& operator=(const InputInbox&) = delete;

  // Takes (reads and deletes) everything waiting now. Files over 16 MiB, not JSON, or not
  // {"type":"message","text":…} are deleted with a warning.
  InboxBatch take();

  // Blocks until something may have arrived in the directory or `timeout` passed (inotify;
  // polls every 100 ms if inotify is unavailable). Spurious wake-ups are possible.
  void wait(std::chrono::milliseconds timeout);

 private:
  std::filesystem::path dir_;
  int inotify_fd_ = -1;
};

}  // namespace sb::agent
