#pragma once
// The built-in agent's workspace tools, and the small pieces they share: reading their input
// fields and capping what they hand back to the model.
//
// Threading: the agent is single-threaded; nothing here keeps state between calls except
// the tool objects themselves, which are used from one thread.

#include <boost/json/object.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/tool.h"
#include "common/result.h"
#include "common/utf8.h"

namespace sb::agent {

// bash, read_file, write_file, edit_file, list_files, glob, grep, and web_fetch when
// context.network is true. The context chooses the tools and the limits their descriptions
// state; each run() gets the context to apply.
ToolList make_workspace_tools(const ToolContext& context);

// Input fields. A missing optional field gives nullopt (or the default); a field of the wrong
// type is an error naming it ("'limit' must be an integer"). Models sometimes quote numbers
// and booleans or send 3.0 for 3; those are accepted.
Result<std::string> required_string(const boost::json::object& input, std::string_view name);
Result<std::optional<std::string>> optional_string(const boost::json::object& input,
                                                   std::string_view name);
// Also an error when outside [min, max] ("'limit' must be between 1 and 100000").
Result<std::optional<std::int64_t>> optional_integer(const boost::json::object& input,
                                                     std::string_view name, std::int64_t min,
                                                     std::int64_t max);
Result<bool> optional_bool(const boost::json::object& input, std::string_view name,
                           bool default_value);

// Collects output of any length in bounded memory, keeping its head and tail. finish()
// returns all of it if it fit in max_bytes, else the head, a line
// "[… N bytes of output omitted …]" and the tail, about max_bytes in all; always valid UTF-8.
class OutputCap {
 public:
  explicit OutputCap(std::size_t max_bytes);
  void append(std::string_view data);
  std::size_t total_bytes() const { return total_; }
  bool truncated() const { return total_ > max_; }
  std::string finish() const;

 private:
  std::size_t max_;
  std::size_t head_limit_;
  std::size_t tail_limit_;
  std::size_t total_ = 0;
  std::string head_;
  std::string tail_;  // the latest bytes, up to twice tail_limit_ between trims
};

// OutputCap over a whole string.
std::string cap_output(std::string_view text, std::size_t max_bytes);

// "3 s", "1.5 s": a duration as the tools report it.
std::string seconds_text(std::chrono::milliseconds duration);

}  // namespace sb::agent
