#include "agent/file_tools.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <regex.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <cerrno>
#include <cstdio>
#include <functional>
#include <optional>
#include <set>
#include <system_error>
#include <vector>

#include "agent/workspace_paths.h"
#include "agent/workspace_tools.h"
#include "common/ids.h"

namespace sb::agent {

namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

constexpr std::size_t kBinaryProbeBytes = 8 * 1024;
constexpr std::int64_t kDefaultReadLines = 2000;
constexpr std::int64_t kMaxReadLines = 100'000;
constexpr std::size_t kMaxReadLineBytes = 2000;
constexpr std::size_t kMaxListEntries = 1000;
constexpr std::size_t kMaxGlobMatches = 1000;
constexpr std::size_t kMaxGrepMatches = 500;
constexpr std::size_t kMaxGrepLineBytes = 500;
constexpr std::size_t kMaxPatternBytes = 4096;
// Entries a list, glob or grep looks at before giving up, so that a tree of millions of
// files costs seconds, not the whole tool timeout.
constexpr std::size_t kMaxVisits = 200'000;
// Room left under max_output_bytes for the closing note of a cut listing.
constexpr std::size_t kClosingNoteRoom = 200;

json::object schema(std::string_view text) { return json::parse(text).as_object(); }

ToolSpec make_spec(std::string name, std::string description, std::string_view input_schema) {
  return ToolSpec{std::move(name), std::move(description), schema(input_schema)};
}

std::string in_quotes(std::string_view text) { return "'" + std::string(text) + "'"; }

std::string errno_text(int error) { return std::generic_category().message(error); }

std::string error_text(const std::error_code& ec) { return ec.message(); }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

bool looks_binary(std::string_view content) {
  return content.substr(0, kBinaryProbeBytes).find('\0') != std::string_view::npos;
}

// A text file read whole, or why not, in words for the model (naming the file as `shown`
// and saying what to do instead).
struct LoadedText {
  enum class Status { ok, binary, too_large, failed };
  Status status = Status::ok;
  std::string content;
  std::string error;
};

LoadedText load_text_file(const fs::path& path, const std::string& shown) {
  auto failed = [](LoadedText::Status status, std::string error) {
    return LoadedText{status, {}, std::move(error)};
  };
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) {
    const int error = errno;
    if (error == ENOENT) {
      return failed(LoadedText::Status::failed, "file " + in_quotes(shown) + " does not exist");
    }
    return failed(LoadedText::Status::failed,
                  "cannot open " + in_quotes(shown) + ": " + errno_text(error));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return failed(LoadedText::Status::failed,
                  "cannot read " + in_quotes(shown) + ": " + errno_text(errno));
  }
  if (S_ISDIR(st.st_mode)) {
    return failed(LoadedText::Status::failed,
                  in_quotes(shown) + " is a directory; use list_files to see what it holds");
  }
  if (!S_ISREG(st.st_mode)) {
    return failed(LoadedText::Status::failed, in_quotes(shown) + " is not a regular file");
  }
  if (static_cast<std::uintmax_t>(st.st_size) > kMaxTextFileBytes) {
    return failed(LoadedText::Status::too_large,
                  in_quotes(shown) + " is " + std::to_string(st.st_size) +
                      " bytes, over the limit of " + std::to_string(kMaxTextFileBytes) +
                      " bytes for the file tools; look at parts of it with bash (head, tail, "
                      "sed -n)");
  }
  LoadedText loaded;
  loaded.content.resize(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < loaded.content.size()) {
    const ssize_t n = ::read(fd.get(), loaded.content.data() + done, loaded.content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return failed(LoadedText::Status::failed,
                    "cannot read " + in_quotes(shown) + ": " + errno_text(errno));
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  loaded.content.resize(done);
  if (looks_binary(loaded.content)) {
    return failed(LoadedText::Status::binary,
                  in_quotes(shown) +
                      " looks like a binary file (it contains NUL bytes); the file tools "
                      "handle text only (try bash with file, xxd or strings)");
  }
  return loaded;
}

Result<std::string> load_text(const fs::path& path, const std::string& shown) {
  auto loaded = load_text_file(path, shown);
  if (loaded.status != LoadedText::Status::ok) return make_error(std::move(loaded.error));
  return std::move(loaded.content);
}

// Writes `content` to `path` (resolved) through a temp file renamed over it, so that readers
// see the old or the new file, never half of one. An existing file keeps its permissions.
Result<void> write_atomically(const fs::path& path, std::string_view content,
                              const std::string& shown) {
  struct stat old {};
  const bool existed = ::stat(path.c_str(), &old) == 0;
  std::optional<fs::path> temp;
  std::optional<Fd> fd;
  for (int attempt = 0; attempt < 5 && !fd; ++attempt) {
    fs::path candidate =
        path.parent_path() / ("." + path.filename().string() + "." + random_id("tmp"));
    const int opened =
        ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0666);
    if (opened >= 0) {
      fd.emplace(opened);
      temp = std::move(candidate);
    } else if (errno != EEXIST) {
      return make_error("cannot write " + in_quotes(shown) + ": " + errno_text(errno));
    }
  }
  if (!fd) return make_error("cannot write " + in_quotes(shown) + ": no free temp file name");
  auto fail = [&](int error) {
    ::unlink(temp->c_str());
    return make_error("cannot write " + in_quotes(shown) + ": " + errno_text(error));
  };
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd->get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(errno);
    done += static_cast<std::size_t>(n);
  }
  if (existed && ::fchmod(fd->get(), old.st_mode & 07777) != 0) return fail(errno);
  if (::fsync(fd->get()) != 0) return fail(errno);
  if (::close(fd->release()) != 0) return fail(errno);
  if (::rename(temp->c_str(), path.c_str()) != 0) return fail(errno);
  return {};
}

// Directory entries sorted by name (bytewise), so that every listing is reproducible.
Result<std::vector<fs::directory_entry>> sorted_entries(const fs::path& dir) {
  std::vector<fs::directory_entry> entries;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return make_error(error_text(ec));
  for (fs::directory_iterator end; it != end; it.increment(ec)) {
    if (ec) return make_error(error_text(ec));
    entries.push_back(*it);
  }
  if (ec) return make_error(error_text(ec));
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.path().filename().native() < b.path().filename().native();
  });
  return entries;
}

bool is_hidden(const fs::path& path) {
  const std::string name = path.filename().string();
  return !name.empty() && name[0] == '.';
}

// A depth-first walk in name order with a budget of entries. visit() is called for every
// entry with its own (not followed) status and says whether to enter it; only real
// directories are entered, never symlinks to them (no loops, no escapes).
class TreeWalk {
 public:
  enum class Next { enter, skip, stop };
  using Visitor = std::function<Next(const fs::directory_entry& entry, fs::file_type type)>;
  using ErrorSink = std::function<void(const fs::path& dir, const std::string& error)>;

  TreeWalk(Visitor visit, ErrorSink unreadable)
      : visit_(std::move(visit)), unreadable_(std::move(unreadable)) {}

  // Walks below `dir`. The error of `dir` itself is returned; those of subdirectories go to
  // the error sink.
  Result<void> run(const fs::path& dir) {
    auto entries = sorted_entries(dir);
    if (!entries) return entries.error();
    walk(*entries);
    return {};
  }
  bool budget_exhausted() const { return exhausted_; }

 private:
  void walk(const std::vector<fs::directory_entry>& entries) {
    for (const auto& entry : entries) {
      if (stopped_) return;
      if (visits_++ >= kMaxVisits) {
        exhausted_ = stopped_ = true;
        return;
      }
      std::error_code ec;
      const auto type = entry.symlink_status(ec).type();
      const Next next = visit_(entry, ec ? fs::file_type::unknown : type);
      if (next == Next::stop) {
        stopped_ = true;
        return;
      }
      if (next != Next::enter || type != fs::file_type::directory) continue;
      auto children = sorted_entries(entry.path());
      if (!children) {
        unreadable_(entry.path(), children.error().message);
        continue;
      }
      walk(*children);
    }
  }

  Visitor visit_;
  ErrorSink unreadable_;
  std::size_t visits_ = 0;
  bool exhausted_ = false;
  bool stopped_ = false;
};

std::vector<std::string> split_path(std::string_view text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto slash = std::min(text.find('/', start), text.size());
    const auto part = text.substr(start, slash - start);
    if (!part.empty() && part != ".") parts.emplace_back(part);
    start = slash + 1;
  }
  return parts;
}

bool has_wildcard(std::string_view segment) {
  return segment.find_first_of("*?[\\") != std::string_view::npos;
}

bool segment_matches(const std::string& pattern, const std::string& name) {
  return ::fnmatch(pattern.c_str(), name.c_str(), FNM_PERIOD) == 0;
}

// Splits a glob into segments: no empty or "." segments, runs of "**" collapsed, a trailing
// "**" read as "**/*" (everything below). Errors for what would leave the search path.
Result<std::vector<std::string>> glob_segments(std::string_view pattern) {
  if (pattern.empty()) return make_error("'pattern' is empty");
  if (pattern.size() > kMaxPatternBytes) {
    return make_error("'pattern' is longer than " + std::to_string(kMaxPatternBytes) + " bytes");
  }
  if (pattern.front() == '/') {
    return make_error("'pattern' must be relative; put the directory to search in 'path'");
  }
  std::vector<std::string> segments;
  for (auto& part : split_path(pattern)) {
    if (part == "..") return make_error("'pattern' must not contain '..'; set 'path' instead");
    if (part == "**" && !segments.empty() && segments.back() == "**") continue;
    segments.push_back(std::move(part));
  }
  if (segments.empty()) return make_error("'pattern' matches nothing but the search path");
  if (segments.back() == "**") segments.emplace_back("*");
  return segments;
}

bool match_from(const std::vector<std::string>& pattern, std::size_t pi,
                const std::vector<std::string>& parts, std::size_t qi, std::vector<char>& failed) {
  const std::size_t key = pi * (parts.size() + 1) + qi;
  if (failed[key]) return false;
  bool matched = false;
  if (pi == pattern.size()) {
    matched = qi == parts.size();
  } else if (pattern[pi] == "**") {
    for (std::size_t k = qi; !matched && k <= parts.size(); ++k) {
      matched = match_from(pattern, pi + 1, parts, k, failed);
      if (k < parts.size() && parts[k][0] == '.') break;  // "**" does not cross hidden dirs
    }
  } else {
    matched = qi < parts.size() && segment_matches(pattern[pi], parts[qi]) &&
              match_from(pattern, pi + 1, parts, qi + 1, failed);
  }
  if (!matched) failed[key] = 1;
  return matched;
}

std::string size_text(std::uintmax_t bytes) {
  return bytes == 1 ? "1 byte" : std::to_string(bytes) + " bytes";
}

// One line of a listing: "dir/", "file (12 bytes)", "link -> target".
std::string describe_entry(const WorkspacePaths& paths, const fs::directory_entry& entry,
                           fs::file_type type) {
  std::string line = paths.display(entry.path());
  std::error_code ec;
  switch (type) {
    case fs::file_type::directory:
      return line + "/";
    case fs::file_type::regular: {
      const auto size = entry.file_size(ec);
      return ec ? line : line + " (" + size_text(size) + ")";
    }
    case fs::file_type::symlink: {
      const auto target = fs::read_symlink(entry.path(), ec);
      return ec ? line + " (symlink)" : line + " -> " + target.string();
    }
    case fs::file_type::fifo:
      return line + " (fifo)";
    case fs::file_type::socket:
      return line + " (socket)";
    default:
      return line + " (special file)";
  }
}

ToolOutput error_from(const Error& error) { return ToolOutput::error(error.message); }

// Lines of a listing, up to a number of lines and of bytes; what does not fit is counted.
class Listing {
 public:
  Listing(std::size_t max_lines, std::size_t max_output_bytes)
      : max_lines_(max_lines),
        max_bytes_(max_output_bytes > 2 * kClosingNoteRoom ? max_output_bytes - kClosingNoteRoom
                                                           : max_output_bytes / 2) {}

  // Adds `line` if it fits; returns false (and counts it) if not.
  bool add(std::string_view line) {
    if (lines_ >= max_lines_ || text_.size() + line.size() + 1 > max_bytes_) {
      ++dropped_;
      return false;
    }
    text_.append(line);
    text_ += '\n';
    ++lines_;
    return true;
  }
  bool full() const { return dropped_ > 0; }
  bool empty() const { return lines_ == 0; }
  std::size_t dropped() const { return dropped_; }
  std::string& text() { return text_; }

 private:
  std::size_t max_lines_;
  std::size_t max_bytes_;
  std::size_t lines_ = 0;
  std::size_t dropped_ = 0;
  std::string text_;
};

// The resolved `path` field. An absent (or empty) optional path means the workspace.
Result<fs::path> path_arg(const json::object& input, const WorkspacePaths& paths, Access access,
                          bool required) {
  auto path = optional_string(input, "path");
  if (!path) return path.error();
  if (!*path || (!required && (*path)->empty())) {
    if (required) return make_error("'path' is required");
    return paths.resolve(".", access);
  }
  return paths.resolve(**path, access);
}

}  // namespace

// read_file --------------------------------------------------------------------------------

ReadFileTool::ReadFileTool()
    : spec_(make_spec(
          "read_file",
          "Read a text file. Returns its lines numbered like `cat -n` (line number, tab, "
          "text). Paths are relative to the group folder, or absolute inside the workspace. "
          "Shows up to 2000 lines from `offset` (1-based, default 1), or `limit` lines; lines "
          "over 2000 bytes are cut. Long output stops at a whole line with a note giving the "
          "offset to continue from. Refuses directories, binary files and files over 8 MiB.",
          R"({"type":"object","properties":{
              "path":{"type":"string","description":"The file to read."},
              "offset":{"type":"integer","minimum":1,
                        "description":"First line to show, 1-based. Default 1."},
              "limit":{"type":"integer","minimum":1,"maximum":100000,
                       "description":"How many lines to show. Default 2000."}},
              "required":["path"]})")) {}

ToolOutput ReadFileTool::run(const json::object& input, const ToolContext& context) {
  const WorkspacePaths paths(context);
  auto offset = optional_integer(input, "offset", 1, INT64_MAX);
  if (!offset) return error_from(offset.error());
  auto limit = optional_integer(input, "limit", 1, kMaxReadLines);
  if (!limit) return error_from(limit.error());
  auto path = path_arg(input, paths, Access::read, true);
  if (!path) return error_from(path.error());
  const std::string shown = paths.display(*path);
  auto content = load_text(*path, shown);
  if (!content) return error_from(content.error());

  const std::string_view text = *content;
  const auto total = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) +
                     (text.empty() || text.back() == '\n' ? 0 : 1);
  if (total == 0) return {shown + " is empty", false};
  const auto first = static_cast<std::size_t>(offset->value_or(1));
  if (first > total) {
    return ToolOutput::error("offset " + std::to_string(first) + " is past the end of " + shown +
                             " (" + std::to_string(total) + " lines)");
  }
  const auto count = static_cast<std::size_t>(limit->value_or(kDefaultReadLines));
  const std::size_t budget = context.max_output_bytes > 2 * kClosingNoteRoom
                                 ? context.max_output_bytes - kClosingNoteRoom
                                 : context.max_output_bytes / 2;

  std::size_t pos = 0;
  for (std::size_t line = 1; line < first; ++line) pos = text.find('\n', pos) + 1;
  std::string out;
  std::size_t last = first - 1;
  bool out_of_room = false;
  while (last < total && last - first + 1 < count) {
    const std::size_t number = last + 1;
    const std::size_t end = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, end - pos);
    char prefix[32];
    std::snprintf(prefix, sizeof prefix, "%6zu\t", number);
    std::string formatted = prefix;
    if (line.size() > kMaxReadLineBytes) {
      formatted.append(line.substr(0, kMaxReadLineBytes));
      formatted += " [\xE2\x80\xA6 line cut, " + std::to_string(line.size()) + " bytes in all]";
    } else {
      formatted.append(line);
    }
    formatted += '\n';
    if (number > first && out.size() + formatted.size() > budget) {
      out_of_room = true;
      break;
    }
    out += formatted;
    last = number;
    pos = end + 1;
  }
  const std::string range = "lines " + std::to_string(first) + "-" + std::to_string(last) + " of " +
                            std::to_string(total);
  if (out_of_room) {
    out += "[output limit reached: " + range +
           " shown; continue with offset=" + std::to_string(last + 1) + "]\n";
  } else if (last < total) {
    out += "[" + range + " shown; continue with offset=" + std::to_string(last + 1) + "]\n";
  }
  return {to_valid_utf8(out), false};
}

// write_file -------------------------------------------------------------------------------

WriteFileTool::WriteFileTool()
    : spec_(make_spec(
          "write_file",
          "Create or overwrite a file with the given content (creates missing parent "
          "directories; the file is replaced atomically). Only in writable parts of the "
          "workspace. Content is limited to 8 MiB. To change part of a file, use edit_file.",
          R"({"type":"object","properties":{
              "path":{"type":"string","description":"The file to write."},
              "content":{"type":"string","description":"The complete new content."}},
              "required":["path","content"]})")) {}

ToolOutput WriteFileTool::run(const json::object& input, const ToolContext& context) {
  const WorkspacePaths paths(context);
  auto content = required_string(input, "content");
  if (!content) return error_from(content.error());
  if (content->size() > kMaxTextFileBytes) {
    return ToolOutput::error("'content' is " + std::to_string(content->size()) +
                             " bytes, over the limit of " + std::to_string(kMaxTextFileBytes));
  }
  auto path = path_arg(input, paths, Access::write, true);
  if (!path) return error_from(path.error());
  const std::string shown = paths.display(*path);
  std::error_code ec;
  const auto status = fs::status(*path, ec);
  if (fs::is_directory(status)) return ToolOutput::error(in_quotes(shown) + " is a directory");
  const bool existed = fs::exists(status);
  if (!existed) {
    fs::create_directories(path->parent_path(), ec);
    if (ec) {
      return ToolOutput::error("cannot create the directory " +
                               in_quotes(paths.display(path->parent_path())) + ": " +
                               error_text(ec));
    }
  }
  auto written = write_atomically(*path, *content, shown);
  if (!written) return error_from(written.error());
  return {"wrote " + size_text(content->size()) + " to " + shown + (existed ? "" : " (new file)"),
          false};
}

// edit_file --------------------------------------------------------------------------------

EditFileTool::EditFileTool()
    : spec_(make_spec(
          "edit_file",
          "Replace an exact string in a text file. old_string must match the file exactly "
          "(whitespace and line breaks included) and occur once, unless replace_all is true. "
          "Read the file first. Files over 8 MiB and binary files are refused.",
          R"({"type":"object","properties":{
              "path":{"type":"string","description":"The file to edit."},
              "old_string":{"type":"string","description":"The exact text to replace."},
              "new_string":{"type":"string","description":"The text to put in its place."},
              "replace_all":{"type":"boolean",
                             "description":"Replace every occurrence. Default false."}},
              "required":["path","old_string","new_string"]})")) {}

ToolOutput EditFileTool::run(const json::object& input, const ToolContext& context) {
  const WorkspacePaths paths(context);
  auto old_string = required_string(input, "old_string");
  if (!old_string) return error_from(old_string.error());
  auto new_string = required_string(input, "new_string");
  if (!new_string) return error_from(new_string.error());
  auto replace_all = optional_bool(input, "replace_all", false);
  if (!replace_all) return error_from(replace_all.error());
  if (old_string->empty()) {
    return ToolOutput::error(
        "old_string is empty; give the exact text to replace (to create or overwrite a whole "
        "file, use write_file)");
  }
  if (*old_string == *new_string) {
    return ToolOutput::error("old_string and new_string are the same; nothing to change");
  }
  auto path = path_arg(input, paths, Access::write, true);
  if (!path) return error_from(path.error());
  const std::string shown = paths.display(*path);
  auto content = load_text(*path, shown);
  if (!content) return error_from(content.error());

  std::vector<std::size_t> found;
  for (auto at = content->find(*old_string); at != std::string::npos;
       at = content->find(*old_string, at + old_string->size())) {
    found.push_back(at);
  }
  if (found.empty()) {
    return ToolOutput::error("old_string not found in " + shown +
                             "; read the file again and copy the text exactly, whitespace and "
                             "line breaks included");
  }
  if (found.size() > 1 && !*replace_all) {
    return ToolOutput::error("old_string occurs " + std::to_string(found.size()) + " times in " +
                             shown +
                             "; include more context to make it unique, or set replace_all");
  }
  std::string updated;
  updated.reserve(content->size() + found.size() * new_string->size());
  std::size_t copied = 0;
  for (const auto at : found) {
    updated.append(*content, copied, at - copied);
    updated += *new_string;
    copied = at + old_string->size();
  }
  updated.append(*content, copied);
  if (updated.size() > kMaxTextFileBytes) {
    return ToolOutput::error("the edited file would be " + std::to_string(updated.size()) +
                             " bytes, over the limit of " + std::to_string(kMaxTextFileBytes));
  }
  auto written = write_atomically(*path, updated, shown);
  if (!written) return error_from(written.error());
  const auto line = 1 + std::count(content->begin(),
                                   content->begin() + static_cast<std::ptrdiff_t>(found[0]), '\n');
  return {"replaced " + std::to_string(found.size()) +
              (found.size() == 1 ? " occurrence" : " occurrences") + " in " + shown + " (" +
              (found.size() == 1 ? "line " : "first at line ") + std::to_string(line) + ")",
          false};
}

// list_files -------------------------------------------------------------------------------

ListFilesTool::ListFilesTool()
    : spec_(make_spec(
          "list_files",
          "List a directory (default: the group folder), sorted by name: directories end in "
          "'/', files show their size, symlinks their target. recursive lists the whole tree "
          "(hidden directories are shown but not entered). At most 1000 entries; the rest are "
          "counted.",
          R"({"type":"object","properties":{
              "path":{"type":"string",
                      "description":"The directory. Default: the group folder."},
              "recursive":{"type":"boolean",
                           "description":"List subdirectories too. Default false."}}})")) {}

ToolOutput ListFilesTool::run(const json::object& input, const ToolContext& context) {
  const WorkspacePaths paths(context);
  auto recursive = optional_bool(input, "recursive", false);
  if (!recursive) return error_from(recursive.error());
  auto path = path_arg(input, paths, Access::read, false);
  if (!path) return error_from(path.error());
  const std::string shown = paths.display(*path);
  std::error_code ec;
  const auto status = fs::status(*path, ec);
  if (!fs::exists(status)) return ToolOutput::error(in_quotes(shown) + " does not exist");
  if (!fs::is_directory(status)) {
    return ToolOutput::error(in_quotes(shown) +
                             " is not a directory; use read_file to read a file");
  }

  Listing listing(kMaxListEntries, context.max_output_bytes);
  TreeWalk walk(
      [&](const fs::directory_entry& entry, fs::file_type type) {
        listing.add(describe_entry(paths, entry, type));
        return *recursive && !is_hidden(entry.path()) ? TreeWalk::Next::enter
                                                      : TreeWalk::Next::skip;
      },
      [&](const fs::path& dir, const std::string& error) {
        listing.add(paths.display(dir) + "/ (cannot list: " + error + ")");
      });
  auto walked = walk.run(*path);
  if (!walked) {
    return ToolOutput::error("cannot list " + in_quotes(shown) + ": " + walked.error().message);
  }
  if (listing.empty() && !listing.full()) return {shown + " is empty", false};
  std::string out = std::move(listing.text());
  if (listing.full()) {
    out += "[\xE2\x80\xA6 " + std::to_string(listing.dropped()) +
           " more entries not shown; list a subdirectory or use glob]\n";
  }
  if (walk.budget_exhausted()) {
    out += "[listing stopped after " + std::to_string(kMaxVisits) + " entries]\n";
  }
  return {to_valid_utf8(out), false};
}

// glob -------------------------------------------------------------------------------------

bool glob_matches(std::string_view pattern, std::string_view path) {
  auto segments = glob_segments(pattern);
  if (!segments) return false;
  const auto parts = split_path(path);
  std::vector<char> failed((segments->size() + 1) * (parts.size() + 1), 0);
  return match_from(*segments, 0, parts, 0, failed);
}

GlobTool::GlobTool()
    : spec_(make_spec(
          "glob",
          "Find files by name pattern under a directory (default: the group folder). `*` and "
          "`?` match within a name, `[abc]` a set, `**` any number of directories (e.g. "
          "`**/*.md`). Names starting with '.' match only patterns starting with '.'. Returns "
          "matching paths sorted by name (directories end in '/'), at most 1000.",
          R"({"type":"object","properties":{
              "pattern":{"type":"string","description":"The glob, relative to path."},
              "path":{"type":"string","description":"Where to search. Default: the group folder."}},
              "required":["pattern"]})")) {}

ToolOutput GlobTool::run(const json::object& input, const ToolContext& context) {
  const WorkspacePaths paths(context);
  auto pattern = required_string(input, "pattern");
  if (!pattern) return error_from(pattern.error());
  auto segments = glob_segments(*pattern);
  if (!segments) return error_from(segments.error());
  auto base = path_arg(input, paths, Access::read, false);
  if (!base) return error_from(base.error());
  const std::string shown = paths.display(*base);
  std::error_code ec;
  if (!fs::is_directory(*base, ec)) {
    return ToolOutput::error(in_quotes(shown) + " is not a directory");
  }

  std::set<std::string> found;
  std::size_t visits = 0;
  auto add = [&](const fs::path& path, bool is_dir) {
    found.insert(paths.display(path) + (is_dir ? "/" : ""));
  };
  // Whether a matched entry may be searched below: a real directory, or a symlink to a
  // directory inside the workspace.
  auto enterable = [&](const fs::path& path, fs::file_type type) {
    std::error_code ignored;
    if (type == fs::file_type::directory) return true;
    return type == fs::file_type::symlink && fs::is_directory(path, ignored) && paths.inside(path);
  };
  std::function<void(const fs::path&, std::size_t)> match = [&](const fs::path& dir,
                                                                std::size_t index) {
    if (visits >= kMaxVisits) return;
    const std::string& segment = (*segments)[index];
    const bool last = index + 1 == segments->size();
    if (!has_wildcard(segment)) {
      const fs::path candidate = dir / segment;
      std::error_code err;
      const auto type = fs::symlink_status(candidate, err).type();
      ++visits;
      if (err || type == fs::file_type::not_found) return;
      if (last) {
        add(candidate, enterable(candidate, type));
      } else if (enterable(candidate, type)) {
        match(candidate, index + 1);
      }
      return;
    }
    auto entries = sorted_entries(dir);
    if (!entries) return;
    if (segment == "**") match(dir, index + 1);
    for (const auto& entry : *entries) {
      if (visits++ >= kMaxVisits) return;
      std::error_code err;
      const auto type = entry.symlink_status(err).type();
      if (segment == "**") {
        if (type == fs::file_type::directory && !is_hidden(entry.path()))
          match(entry.path(), index);
        continue;
      }
      if (!segment_matches(segment, entry.path().filename().string())) continue;
      if (last) {
        add(entry.path(), enterable(entry.path(), type));
      } else if (enterable(entry.path(), type)) {
        match(entry.path(), index + 1);
      }
    }
  };
  match(*base, 0);

  const std::string exhausted = visits >= kMaxVisits
                                    ? "[search stopped after " + std::to_string(kMaxVisits) +
                                          " entries; narrow the path or pattern]\n"
                                    : "";
  if (found.empty()) {
    return {"no paths match " + in_quotes(*pattern) + " in " + shown + "\n" + exhausted, false};
  }
  Listing listing(kMaxGlobMatches, context.max_output_bytes);
  for (const auto& path : found) listing.add(path);
  std::string out = std::move(listing.text());
  if (listing.full()) {
    out += "[\xE2\x80\xA6 " + std::to_string(listing.dropped()) +
           " more matches not shown; narrow the pattern]\n";
  }
  out += exhausted;
  return {to_valid_utf8(out), false};
}

// grep -------------------------------------------------------------------------------------

namespace {

class Regex {
 public:
  Regex() = default;
  ~Regex() {
    if (compiled_) ::regfree(&regex_);
  }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  Result<void> compile(const std::string& pattern, bool ignore_case) {
    const int rc = ::regcomp(&regex_, pattern.c_str(),
                             REG_EXTENDED | REG_NOSUB | (ignore_case ? REG_ICASE : 0));
    if (rc != 0) {
      char message[256];
      ::regerror(rc, &regex_, message, sizeof message);
      return make_error("invalid regular expression " + in_quotes(pattern) + ": " + message);
    }
    compiled_ = true;
    return {};
  }
  bool search(const char* line) const { return ::regexec(&regex_, line, 0, nullptr, 0) == 0; }

 private:
  regex_t regex_{};
  bool compiled_ = false;
};

}  // namespace

GrepTool::GrepTool()
    : spec_(make_spec(
          "grep",
          "Search file contents for a POSIX extended regular expression (as `grep -E`). "
          "Searches `path` (a file or directory, default: the group folder) recursively, "
          "skipping hidden entries, binary files and files over 8 MiB. `glob` limits the "
          "files searched (e.g. `*.md`, or `docs/**/*.md`). Returns `file:line: text` lines "
          "in file order, at most 500, lines cut at 500 bytes.",
          R"({"type":"object","properties":{
              "pattern":{"type":"string","description":"POSIX extended regular expression."},
              "path":{"type":"string",
                      "description":"File or directory. Default: the group folder."},
              "glob":{"type":"string",
                      "description":"Only files whose name (or path, if it has a '/') matches."},
              "ignore_case":{"type":"boolean","description":"Case-insensitive. Default false."}},
              "required":["pattern"]})")) {}

ToolOutput GrepTool::run(const json::object& input, const ToolContext& context) {
  const WorkspacePaths paths(context);
  auto pattern = required_string(input, "pattern");
  if (!pattern) return error_from(pattern.error());
  if (pattern->empty()) return ToolOutput::error("'pattern' is empty");
  if (pattern->size() > kMaxPatternBytes) {
    return ToolOutput::error("'pattern' is longer than " + std::to_string(kMaxPatternBytes) +
                             " bytes");
  }
  if (pattern->find('\0') != std::string::npos) {
    return ToolOutput::error("'pattern' contains a NUL byte");
  }
  auto ignore_case = optional_bool(input, "ignore_case", false);
  if (!ignore_case) return error_from(ignore_case.error());
  auto file_glob = optional_string(input, "glob");
  if (!file_glob) return error_from(file_glob.error());
  const bool glob_by_path = *file_glob && (*file_glob)->find('/') != std::string::npos;
  if (*file_glob && !(*file_glob)->empty()) {
    auto checked = glob_segments(**file_glob);
    if (!checked) return ToolOutput::error("'glob': " + checked.error().message);
  }
  auto target = path_arg(input, paths, Access::read, false);
  if (!target) return error_from(target.error());
  const std::string shown = paths.display(*target);
  Regex regex;
  auto compiled = regex.compile(*pattern, *ignore_case);
  if (!compiled) return error_from(compiled.error());

  Listing listing(kMaxGrepMatches, context.max_output_bytes);
  std::size_t binary = 0, large = 0, unreadable = 0;
  std::string line;
  // Searches one file; false once the listing is full.
  auto search_file = [&](const fs::path& file) {
    const std::string name = paths.display(file);
    const auto loaded = load_text_file(file, name);
    switch (loaded.status) {
      case LoadedText::Status::ok:
        break;
      case LoadedText::Status::binary:
        ++binary;
        return true;
      case LoadedText::Status::too_large:
        ++large;
        return true;
      case LoadedText::Status::failed:
        ++unreadable;
        return true;
    }
    const std::string& content = loaded.content;
    std::size_t number = 0;
    for (std::size_t pos = 0; pos < content.size();) {
      const std::size_t end = std::min(content.find('\n', pos), content.size());
      ++number;
      line.assign(content, pos, end - pos);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      pos = end + 1;
      if (!regex.search(line.c_str())) continue;
      if (line.size() > kMaxGrepLineBytes) {
        line.resize(kMaxGrepLineBytes);
        line += " [\xE2\x80\xA6]";
      }
      if (!listing.add(name + ":" + std::to_string(number) + ": " + line)) return false;
    }
    return true;
  };

  std::error_code ec;
  const auto status = fs::status(*target, ec);
  bool exhausted = false;
  if (fs::is_regular_file(status)) {
    search_file(*target);
  } else if (fs::is_directory(status)) {
    auto wanted = [&](const fs::path& file) {
      if (!*file_glob || (*file_glob)->empty()) return true;
      if (glob_by_path) {
        return glob_matches(**file_glob, file.lexically_relative(*target).generic_string());
      }
      return segment_matches(**file_glob, file.filename().string());
    };
    TreeWalk walk(
        [&](const fs::directory_entry& entry, fs::file_type type) {
          if (is_hidden(entry.path())) return TreeWalk::Next::skip;
          if (type == fs::file_type::directory) return TreeWalk::Next::enter;
          std::error_code err;
          const bool regular =
              type == fs::file_type::regular ||
              (type == fs::file_type::symlink && fs::is_regular_file(entry.path(), err) &&
               paths.inside(entry.path()));
          if (!regular || !wanted(entry.path())) return TreeWalk::Next::skip;
          return search_file(entry.path()) ? TreeWalk::Next::skip : TreeWalk::Next::stop;
        },
        [&](const fs::path&, const std::string&) { ++unreadable; });
    auto walked = walk.run(*target);
    if (!walked) {
      return ToolOutput::error("cannot search " + in_quotes(shown) + ": " + walked.error().message);
    }
    exhausted = walk.budget_exhausted();
  } else if (fs::exists(status)) {
    return ToolOutput::error(in_quotes(shown) + " is not a file or directory");
  } else {
    return ToolOutput::error(in_quotes(shown) + " does not exist");
  }

  std::string skipped;
  auto note = [&](std::size_t count, std::string_view what) {
    if (count == 0) return;
    if (!skipped.empty()) skipped += ", ";
    skipped += std::to_string(count) + " " + std::string(what);
  };
  note(binary, binary == 1 ? "binary file" : "binary files");
  note(large, large == 1 ? "file over 8 MiB" : "files over 8 MiB");
  note(unreadable, "unreadable");
  std::string out;
  if (listing.empty() && !listing.full()) {
    out = "no matches for " + in_quotes(*pattern) + " in " + shown + "\n";
  } else {
    out = std::move(listing.text());
    if (listing.full()) {
      out += "[\xE2\x80\xA6 more matches not shown; narrow the pattern, path or glob]\n";
    }
  }
  if (!skipped.empty()) out += "[skipped: " + skipped + "]\n";
  if (exhausted) {
    out += "[search stopped after " + std::to_string(kMaxVisits) + " entries; narrow the path]\n";
  }
  return {to_valid_utf8(out), false};
}

}  // namespace sb::agent
