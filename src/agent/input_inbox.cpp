#include "agent/input_inbox.h"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <fstream>
#include <sstream>
#include <thread>

#include "host/ipc_files.h"

namespace sb::agent {

namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

constexpr std::uintmax_t kMaxInputFileBytes = 16ull << 20;

// The follow-up's text, or an error message.
std::pair<std::string, std::string> read_follow_up(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(fs::symlink_status(path, ec))) return {{}, "not a regular file"};
  if (fs::file_size(path, ec) > kMaxInputFileBytes || ec) return {{}, "too large or unreadable"};
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  boost::system::error_code jec;
  json::value v = json::parse(content.str(), jec);
  if (jec || !v.is_object()) return {{}, "not a JSON object"};
  const json::object& o = v.get_object();
  const json::value* type = o.if_contains("type");
  const json::value* text = o.if_contains("text");
  if (!type || !type->is_string() || type->get_string() != "message") {
    return {{}, "type is not \"message\""};
  }
  if (!text || !text->is_string()) return {{}, "no text"};
  return {std::string(text->get_string()), {}};
}

}  // namespace

InputInbox::InputInbox(fs::path input_dir) : dir_(std::move(input_dir)) {
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ >= 0 && ::inotify_add_watch(inotify_fd_, dir_.c_str(),
                                              IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE) < 0) {
    ::close(inotify_fd_);
    inotify_fd_ = -1;
  }
}

InputInbox::~InputInbox() {
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
}

InboxBatch InputInbox::take() {
  InboxBatch batch;
  std::vector<fs::path> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.empty() && name.front() != '.') names.push_back(it->path());
  }
  std::sort(names.begin(), names.end());
  for (const auto& path : names) {
    const std::string name = path.filename().string();
    if (name == host::kCloseRequestName) {
      batch.close = true;
    } else {
      auto [text, problem] = read_follow_up(path);
      if (problem.empty()) {
        batch.messages.push_back(std::move(text));
      } else {
        batch.warnings.push_back("input/" + name + " ignored: " + problem);
      }
    }
    fs::remove(path, ec);
  }
  return batch;
}

void InputInbox::wait(std::chrono::milliseconds timeout) {
  if (inotify_fd_ < 0) {
    std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(100)));
    return;
  }
  pollfd pfd{inotify_fd_, POLLIN, 0};
  if (::poll(&pfd, 1, static_cast<int>(timeout.count())) > 0) {
    char buffer[4096];
    while (::read(inotify_fd_, buffer, sizeof buffer) > 0) {
    }
  }
}

}  // namespace sb::agent
