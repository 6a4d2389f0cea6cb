#include "agent/workspace_paths.h"

#include <algorithm>
#include <deque>
#include <system_error>

namespace sb::agent {

namespace fs = std::filesystem;

namespace {

// Linux gives up after 40 links in one lookup (ELOOP); so do we.
constexpr int kMaxSymlinks = 40;

// Resolves an absolute path as the kernel would when opening it: component by component,
// applying `..` to what has been resolved so far and following every symlink met on the way,
// even a dangling one. Components that do not exist are taken as they are.
Result<fs::path> follow(const fs::path& absolute) {
  const fs::path relative = absolute.relative_path();
  std::deque<fs::path> pending(relative.begin(), relative.end());
  fs::path result = "/";
  int links = 0;
  while (!pending.empty()) {
    const fs::path part = std::move(pending.front());
    pending.pop_front();
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      result = result.parent_path();
      continue;
    }
    fs::path candidate = result / part;
    std::error_code ec;
    const auto status = fs::symlink_status(candidate, ec);
    if (ec || !fs::is_symlink(status)) {
      result = std::move(candidate);
      continue;
    }
    if (++links > kMaxSymlinks) {
      return make_error("too many levels of symbolic links at '" + candidate.string() + "'");
    }
    const fs::path target = fs::read_symlink(candidate, ec);
    if (ec) return make_error("cannot read the symbolic link '" + candidate.string() + "'");
    if (target.is_absolute()) result = "/";
    const fs::path rest = target.relative_path();
    pending.insert(pending.begin(), rest.begin(), rest.end());
  }
  return result;
}

}  // namespace

bool path_within(const fs::path& path, const fs::path& base) {
  auto base_end = base.end();
  if (base_end != base.begin() && std::prev(base_end)->empty()) --base_end;  // trailing '/'
  return std::mismatch(base.begin(), base_end, path.begin(), path.end()).first == base_end;
}

WorkspacePaths::WorkspacePaths(const ToolContext& context) {
  auto resolve_dir = [](const fs::path& dir) {
    std::error_code ec;
    const fs::path absolute = dir.is_absolute() ? dir : fs::absolute(dir, ec);
    auto followed = follow(absolute);
    return followed ? std::move(followed).value() : absolute.lexically_normal();
  };
  workspace_ = resolve_dir(context.workspace);
  for (const auto& root : context.roots) {
    roots_.push_back(Root{resolve_dir(root.path), root.path.string(), root.writable});
  }
  if (roots_.empty()) roots_.push_back(Root{workspace_, context.workspace.string(), true});
}

const WorkspacePaths::Root* WorkspacePaths::innermost_root(const fs::path& resolved) const {
  const Root* best = nullptr;
  for (const auto& root : roots_) {
    if (!path_within(resolved, root.resolved)) continue;
    if (best == nullptr || std::distance(root.resolved.begin(), root.resolved.end()) >
                               std::distance(best->resolved.begin(), best->resolved.end())) {
      best = &root;
    }
  }
  return best;
}

std::string WorkspacePaths::roots_list() const {
  std::string list;
  for (const auto& root : roots_) {
    if (!list.empty()) list += ", ";
    list += root.shown;
  }
  return list;
}

Result<fs::path> WorkspacePaths::resolve(std::string_view requested, Access access) const {
  if (requested.empty()) return make_error("path is empty");
  if (requested.find('\0') != std::string_view::npos) {
    return make_error("path contains a NUL byte");
  }
  const std::string quoted = "'" + std::string(requested) + "'";
  fs::path path(requested);
  if (path.is_relative()) path = workspace_ / path;
  const fs::path lexical = path.lexically_normal();

  auto resolved = follow(path);
  if (!resolved) return make_error("path " + quoted + ": " + resolved.error().message);
  const Root* root = innermost_root(*resolved);
  if (root == nullptr) {
    if (innermost_root(lexical) != nullptr) {
      return make_error("path " + quoted + " resolves to '" + resolved->string() +
                        "', outside the workspace (" + roots_list() + ")");
    }
    return make_error("path " + quoted + " is outside the workspace (" + roots_list() + ")");
  }
  if (access == Access::write && !root->writable) {
    std::string writable;
    for (const auto& r : roots_) {
      if (!r.writable) continue;
      if (!writable.empty()) writable += ", ";
      writable += r.shown;
    }
    return make_error("cannot write " + quoted + ": " + root->shown + " is read-only" +
                      (writable.empty() ? std::string() : " (writable: " + writable + ")"));
  }
  return resolved;
}

bool WorkspacePaths::inside(const fs::path& resolved) const {
  auto followed = follow(resolved);
  return followed && innermost_root(*followed) != nullptr;
}

std::string WorkspacePaths::display(const fs::path& resolved) const {
  if (!path_within(resolved, workspace_)) return resolved.string();
  const fs::path relative = resolved.lexically_relative(workspace_);
  if (relative.empty() || relative == ".") return ".";
  return relative.string();
}

}  // namespace sb::agent
