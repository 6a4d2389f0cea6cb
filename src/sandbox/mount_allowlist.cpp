#include "sandbox/mount_allowlist.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <system_error>
#include <utility>

namespace sb::sandbox {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

constexpr std::size_t kMaxContainerPathBytes = 255;

// "~" and "~/..." become $HOME and $HOME/...; the result must be absolute. "~user" is not
// supported: it would need the password database and is easy to write out in full.
Result<fs::path> expand_home(std::string_view text) {
  if (text.empty()) return make_error("the path is empty");
  if (text.front() == '~') {
    if (text.size() > 1 && text[1] != '/') {
      return make_error("\"" + std::string(text) +
                        "\": only \"~\" and \"~/...\" are expanded; write the full path");
    }
    const char* home = std::getenv("HOME");
    if (home == nullptr || home[0] != '/') {
      return make_error("\"" + std::string(text) +
                        "\" starts with ~ but $HOME is not set to an absolute path");
    }
    fs::path expanded = home;
    if (text.size() > 2) expanded /= fs::path(std::string(text.substr(2)));
    return expanded;
  }
  fs::path path{std::string(text)};
  if (!path.is_absolute()) {
    return make_error("\"" + std::string(text) +
                      "\" is not absolute; write an absolute path or one starting with ~/");
  }
  return path;
}

// True when `inner` equals `outer` or lies below it. Both must be normalised (canonical or
// lexically normal) absolute paths; comparing components keeps /a/projects2 out of /a/projects.
bool is_within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (o->empty()) continue;  // the empty last element of a path ending in '/'
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

std::size_t depth(const fs::path& path) {
  return static_cast<std::size_t>(std::distance(path.begin(), path.end()));
}

// The first pattern contained in a component of `resolved` (or, for a pattern with '/', in the
// whole path), or nullptr.
const std::string* blocked_by(const fs::path& resolved, const std::vector<std::string>& patterns) {
  const std::string whole = resolved.string();
  for (const std::string& pattern : patterns) {
    if (pattern.find('/') != std::string::npos) {
      if (whole.find(pattern) != std::string::npos) return &pattern;
      continue;
    }
    for (const fs::path& component : resolved) {
      if (component.string().find(pattern) != std::string::npos) return &pattern;
    }
  }
  return nullptr;
}

// The spellings under which a protected path may be reached: as given (made absolute) and with
// its symlinks resolved, so that neither a link to it nor its real location slips through.
std::vector<fs::path> spellings(const fs::path& path) {
  std::vector<fs::path> out;
  std::error_code ec;
  const fs::path absolute = fs::absolute(path, ec);
  if (ec) return out;
  out.push_back(absolute.lexically_normal());
  const fs::path resolved = fs::weakly_canonical(absolute, ec);
  if (!ec && resolved != out.front()) out.push_back(resolved);
  return out;
}

bool is_sane_container_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// Empty when `path` is a good name under /workspace/extra, else why not.
std::string container_path_problem(std::string_view path) {
  if (path.empty()) return "is empty";
  if (path.size() > kMaxContainerPathBytes) {
    return "is longer than " + std::to_string(kMaxContainerPathBytes) + " bytes";
  }
  if (path.front() == '/') return "is absolute; give a path relative to /workspace/extra";
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = path.find('/', start);
    const std::string_view component = path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (component.empty()) return "has an empty component (\"//\" or a trailing '/')";
    if (component == "." || component == "..") {
      return "has a \"" + std::string(component) + "\" component";
    }
    if (!std::all_of(component.begin(), component.end(), is_sane_container_char)) {
      return "may only contain letters, digits, '.', '_', '-' and '/'";
    }
    if (slash == std::string_view::npos) return {};
    start = slash + 1;
  }
}

// The last name of the host path as the user wrote it (so a symlink keeps its own name).
std::string default_container_path(const fs::path& expanded) {
  fs::path normal = expanded.lexically_normal();
  if (normal.filename().empty()) normal = normal.parent_path();
  return normal.filename().string();
}

MountDecision refuse(std::string reason) {
  MountDecision decision;
  decision.reason = std::move(reason);
  return decision;
}

std::string quoted(const fs::path& path) { return "\"" + path.string() + "\""; }

// --- loading ---

std::string line_and_column(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  const std::string_view before = text.substr(0, offset);
  const std::size_t line =
      1 + static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n'));
  const std::size_t last_newline = before.rfind('\n');
  const std::size_t column =
      1 + (last_newline == std::string_view::npos ? offset : offset - last_newline - 1);
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

Result<std::string> read_small_file(const fs::path& file) {
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  if (ec) return make_error("cannot read it: " + ec.message());
  if (size > kMaxMountAllowlistBytes) {
    return make_error("it is " + std::to_string(size) + " bytes, more than the limit of " +
                      std::to_string(kMaxMountAllowlistBytes));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return make_error(std::string("cannot open it: ") + std::strerror(errno));
  std::string text;
  text.resize(static_cast<std::size_t>(size));
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (in.bad()) return make_error("cannot read it");
  // A file that grew since it was measured is cut at the size measured; that text is then
  // almost certainly invalid JSON and reported as such.
  return text;
}

Result<std::vector<AllowedRoot>> parse_roots(const json::value& value, const fs::path& file) {
  if (!value.is_array()) return make_error("\"allowedRoots\" must be an array of objects");
  std::vector<AllowedRoot> roots;
  const json::array& array = value.get_array();
  for (std::size_t i = 0; i < array.size(); ++i) {
    const std::string where = "allowedRoots[" + std::to_string(i) + "]";
    if (!array[i].is_object()) return make_error("\"" + where + "\" must be an object");
    AllowedRoot root;
    bool has_path = false;
    for (const auto& [key, field] : array[i].get_object()) {
      if (key == "path") {
        if (!field.is_string() || field.get_string().empty()) {
          return make_error("\"" + where + ".path\" must be a non-empty string");
        }
        root.path = std::string(field.get_string());
        has_path = true;
      } else if (key == "allowReadWrite") {
        if (!field.is_bool())
          return make_error("\"" + where + ".allowReadWrite\" must be true or false");
        root.allow_read_write = field.get_bool();
      } else if (key == "description") {
        if (!field.is_string()) return make_error("\"" + where + ".description\" must be a string");
        root.description = std::string(field.get_string());
      } else {
        return make_error("\"" + where + "\" has an unknown key \"" + std::string(key) +
                          "\"; the keys are path, allowReadWrite and description");
      }
    }
    if (!has_path) return make_error("\"" + where + "\" has no \"path\"");
    auto expanded = expand_home(root.path);
    if (!expanded) return make_error("\"" + where + ".path\" " + expanded.error().message);
    std::error_code ec;
    root.resolved = fs::canonical(*expanded, ec);
    if (ec) {
      std::string shown = "\"" + root.path + "\"";
      if (expanded->string() != root.path) shown += " (" + expanded->string() + ")";
      spdlog::warn("mount allowlist {}: allowed root {} is skipped: {}", file.string(), shown,
                   ec.message());
      continue;
    }
    roots.push_back(std::move(root));
  }
  return roots;
}

Result<std::vector<std::string>> parse_patterns(const json::value& value) {
  std::vector<std::string> patterns(std::begin(kDefaultBlockedPatterns),
                                    std::end(kDefaultBlockedPatterns));
  if (!value.is_array()) return make_error("\"blockedPatterns\" must be an array of strings");
  const json::array& array = value.get_array();
  for (std::size_t i = 0; i < array.size(); ++i) {
    // An empty pattern would be contained in every name and block everything, which is
    // certainly not what was meant.
    if (!array[i].is_string() || array[i].get_string().empty()) {
      return make_error("\"blockedPatterns[" + std::to_string(i) +
                        "]\" must be a non-empty string");
    }
    std::string pattern(array[i].get_string());
    if (std::find(patterns.begin(), patterns.end(), pattern) == patterns.end()) {
      patterns.push_back(std::move(pattern));
    }
  }
  return patterns;
}

Result<MountAllowlist> parse_allowlist(std::string_view text, const fs::path& file) {
  json::parser parser;
  boost::system::error_code ec;
  const std::size_t used = parser.write(text.data(), text.size(), ec);
  if (ec)
    return make_error("not valid JSON at " + line_and_column(text, used) + ": " + ec.message());
  const json::value root = parser.release();
  if (!root.is_object()) return make_error("the top level must be a JSON object");

  MountAllowlist allowlist;
  allowlist.file = file;
  allowlist.blocked_patterns.assign(std::begin(kDefaultBlockedPatterns),
                                    std::end(kDefaultBlockedPatterns));
  bool has_roots = false;
  for (const auto& [key, value] : root.get_object()) {
    if (key == "allowedRoots") {
      auto roots = parse_roots(value, file);
      if (!roots) return roots.error();
      allowlist.roots = std::move(roots).value();
      has_roots = true;
    } else if (key == "blockedPatterns") {
      auto patterns = parse_patterns(value);
      if (!patterns) return patterns.error();
      allowlist.blocked_patterns = std::move(patterns).value();
    } else if (key == "nonMainReadOnly") {
      if (!value.is_bool()) return make_error("\"nonMainReadOnly\" must be true or false");
      allowlist.non_main_read_only = value.get_bool();
    } else {
      return make_error("unknown key \"" + std::string(key) +
                        "\"; the keys are allowedRoots, blockedPatterns and nonMainReadOnly");
    }
  }
  if (!has_roots) return make_error("\"allowedRoots\" is missing");
  return allowlist;
}

}  // namespace

Result<std::optional<MountAllowlist>> load_mount_allowlist(const fs::path& file) {
  const auto fail = [&file](const std::string& problem) {
    return make_error("mount allowlist " + file.string() + ": " + problem +
                      "; fix the file, or remove it to allow no extra mounts");
  };
  std::error_code ec;
  const fs::file_status status = fs::status(file, ec);
  if (status.type() == fs::file_type::not_found) return std::optional<MountAllowlist>{};
  if (ec) return fail("cannot read it: " + ec.message());
  if (!fs::is_regular_file(status)) return fail("it is not a regular file");

  auto text = read_small_file(file);
  if (!text) return fail(text.error().message);
  auto allowlist = parse_allowlist(*text, file);
  if (!allowlist) return fail(allowlist.error().message);
  return std::optional<MountAllowlist>(std::move(allowlist).value());
}

MountDecision check_mount(const std::optional<MountAllowlist>& allowlist,
                          const MountRequest& request, bool is_main,
                          const ProtectedPaths& protected_paths) {
  if (!allowlist) {
    return refuse("no mount allowlist at " + protected_paths.allowlist_file.string() +
                  "; extra mounts are disabled until one is written (docs/mounts.md)");
  }

  auto expanded = expand_home(request.host_path);
  if (!expanded) return refuse("host path " + expanded.error().message);

  const std::string container_path =
      request.container_path.empty() ? default_container_path(*expanded) : request.container_path;
  if (const std::string problem = container_path_problem(container_path); !problem.empty()) {
    return refuse("container path \"" + container_path + "\" " + problem +
                  (request.container_path.empty()
                       ? " (it was taken from the host path; set container_path explicitly)"
                       : ""));
  }

  std::error_code ec;
  const fs::path resolved = fs::canonical(*expanded, ec);
  if (ec) return refuse("host path " + quoted(*expanded) + " cannot be resolved: " + ec.message());
  const fs::file_status status = fs::status(resolved, ec);
  if (ec || !(fs::is_directory(status) || fs::is_regular_file(status))) {
    return refuse("host path " + quoted(resolved) + " is neither a directory nor a regular file");
  }

  const AllowedRoot* root = nullptr;
  for (const AllowedRoot& candidate : allowlist->roots) {
    if (is_within(resolved, candidate.resolved) &&
        (root == nullptr || depth(candidate.resolved) > depth(root->resolved))) {
      root = &candidate;
    }
  }
  if (root == nullptr) {
    std::string roots;
    for (const AllowedRoot& r : allowlist->roots)
      roots += (roots.empty() ? "" : ", ") + r.resolved.string();
    return refuse("host path " + quoted(resolved) + " is not inside an allowed root (" +
                  (roots.empty() ? "none exist" : roots) + ") of " + allowlist->file.string());
  }

  if (const std::string* pattern = blocked_by(resolved, allowlist->blocked_patterns)) {
    return refuse("host path " + quoted(resolved) + " matches the blocked pattern \"" + *pattern +
                  "\"");
  }

  for (const fs::path* guarded : {&protected_paths.allowlist_file, &protected_paths.data_dir}) {
    if (guarded->empty()) continue;
    for (const fs::path& spelling : spellings(*guarded)) {
      if (is_within(resolved, spelling) || is_within(spelling, resolved)) {
        return refuse("host path " + quoted(resolved) + " would expose " + quoted(*guarded) +
                      ", which no sandbox may see");
      }
    }
  }

  MountDecision decision;
  decision.allowed = true;
  decision.host_path = resolved;
  decision.container_path = std::string(kExtraMountsDir) + "/" + container_path;
  decision.reason = "allowed under root \"" + root->path + "\"" +
                    (root->description.empty() ? "" : " (" + root->description + ")");
  decision.read_only = true;
  if (request.read_write) {
    if (!root->allow_read_write) {
      decision.reason +=
          "; read-only, although read-write was asked for: the root does not "
          "allow read-write";
    } else if (!is_main && allowlist->non_main_read_only) {
      decision.reason +=
          "; read-only, although read-write was asked for: nonMainReadOnly "
          "makes mounts of non-main groups read-only";
    } else {
      decision.read_only = false;
    }
  }
  return decision;
}

std::vector<ValidatedMount> validate_mounts(const std::optional<MountAllowlist>& allowlist,
                                            std::span<const MountRequest> requests, bool is_main,
                                            const ProtectedPaths& protected_paths,
                                            std::string_view group_folder) {
  std::vector<ValidatedMount> mounts;
  for (const MountRequest& request : requests) {
    MountDecision decision = check_mount(allowlist, request, is_main, protected_paths);
    if (decision.allowed) {
      const auto taken = std::find_if(mounts.begin(), mounts.end(), [&](const ValidatedMount& m) {
        return m.container_path == decision.container_path;
      });
      if (taken != mounts.end()) {
        decision.allowed = false;
        decision.reason =
            decision.container_path + " is already the mount point of " + quoted(taken->host_path);
      }
    }
    if (!decision.allowed) {
      spdlog::warn("group {}: extra mount \"{}\" refused: {}", group_folder, request.host_path,
                   decision.reason);
      continue;
    }
    spdlog::debug("group {}: extra mount {} at {} ({}): {}", group_folder,
                  decision.host_path.string(), decision.container_path,
                  decision.read_only ? "ro" : "rw", decision.reason);
    mounts.push_back(
        {std::move(decision.host_path), std::move(decision.container_path), decision.read_only});
  }
  return mounts;
}

std::string mount_allowlist_template() {
  return R"({
  "allowedRoots": [
    {"path": "~/projects", "allowReadWrite": true, "description": "Development projects"},
    {"path": "~/Documents/work", "allowReadWrite": false, "description": "Work documents, read-only"}
  ],
  "blockedPatterns": ["password", "secret", "token"],
  "nonMainReadOnly": true
}
)";
}

}  // namespace sb::sandbox
