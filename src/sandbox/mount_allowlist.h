#pragma once
// Which extra host directories a group's sandbox may see (docs/mounts.md). The allowlist is
// a JSON file kept outside the data directory and never mounted into a sandbox, so an agent
// cannot widen its own access:
//   {"allowedRoots": [{"path": "~/projects", "allowReadWrite": true, "description": "..."}],
//    "blockedPatterns": ["secret-stuff"], "nonMainReadOnly": true}
// A requested mount is allowed only when its resolved host path (symlinks followed) lies
// inside an allowed root, matches no blocked pattern, and neither is, lies inside, nor
// contains a protected path (the allowlist itself, the data directory).
//
// Threading: these functions touch the file system (stat, realpath, one small read) and log
// with spdlog; they keep no state and may be called from any thread. They block briefly, so
// call them where sandbox set-up already does file work, not in a hot loop.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sb::sandbox {

// The largest allowlist file read; a bigger one is an error.
inline constexpr std::uintmax_t kMaxMountAllowlistBytes = 1024 * 1024;

// Patterns that always block, whatever the file says (the file can only add to them).
inline constexpr std::string_view kDefaultBlockedPatterns[] = {
    ".ssh",    ".gnupg",  ".gpg",        ".aws",        ".azure", ".gcloud",
    ".kube",   ".docker", "credentials", ".env",        ".netrc", ".npmrc",
    ".pypirc", "id_rsa",  "id_ed25519",  "private_key", ".secret"};

struct AllowedRoot {
  std::string path;                // as written in the file ("~/projects")
  std::filesystem::path resolved;  // ~ expanded, symlinks resolved; exists at load time
  bool allow_read_write = false;   // "allowReadWrite", default false
  std::string description;         // "description", may be empty
};

struct MountAllowlist {
  std::filesystem::path file;                 // where it was loaded from
  std::vector<AllowedRoot> roots;             // only roots that existed at load time
  std::vector<std::string> blocked_patterns;  // the defaults, then the file's own, no repeats
  bool non_main_read_only = true;             // "nonMainReadOnly", default true
};

// Reads and validates the allowlist at `file`.
// - The file does not exist: nullopt, meaning no extra mounts are allowed at all.
// - It cannot be read, is larger than kMaxMountAllowlistBytes, is not valid JSON, or a key
//   is missing, unknown or of the wrong type: an error naming the file and the problem.
//   "allowedRoots" (array of objects with a non-empty string "path", optional boolean
//   "allowReadWrite", optional string "description") is required; "blockedPatterns"
//   (array of non-empty strings) and "nonMainReadOnly" (boolean) are optional.
// - A root path must be absolute or start with "~/" (or be "~"), expanded with $HOME. Roots
//   that do not exist are skipped with a warning; a root's symlinks are resolved now.
Result<std::optional<MountAllowlist>> load_mount_allowlist(const std::filesystem::path& file);

// A mount a group asks for.
struct MountRequest {
  std::string host_path;       // absolute, or starting with "~/"
  std::string container_path;  // relative to /workspace/extra; empty: the host path's last name
  bool read_write = false;
};

// What no sandbox may see. Empty paths are ignored.
struct ProtectedPaths {
  std::filesystem::path allowlist_file;
  std::filesystem::path data_dir;
};

// Where extra mounts appear inside the sandbox.
inline constexpr std::string_view kExtraMountsDir = "/workspace/extra";

struct MountDecision {
  bool allowed = false;
  // Why it was refused, naming the path and the rule; or "allowed under root ..." (plus why
  // it was made read-only when read-write was asked for and not granted).
  std::string reason;
  std::filesystem::path host_path;  // resolved; set when allowed
  std::string container_path;       // full in-sandbox path, /workspace/extra/<name>; when allowed
  bool read_only = true;
};

// Decides one request. Refused when: there is no allowlist; the container path is absolute,
// empty, longer than 255 bytes, has an empty, "." or ".." component, or a character outside
// [A-Za-z0-9._-] and '/'; the host path is not absolute after ~ expansion, does not exist, or
// is neither a directory nor a regular file; its resolved path is not inside (or equal to) an
// allowed root, compared component by component; a component of the resolved path contains a
// blocked pattern; or it equals, lies inside or contains a protected path. An allowed mount is
// read-write only when asked for, the root allows it, and the group is main or the allowlist
// does not make non-main groups read-only; otherwise it is allowed read-only. When several
// roots contain the path, the deepest one decides read-write (so a read-only root inside a
// read-write one keeps its files read-only).
MountDecision check_mount(const std::optional<MountAllowlist>& allowlist,
                          const MountRequest& request, bool is_main,
                          const ProtectedPaths& protected_paths);

struct ValidatedMount {
  std::filesystem::path host_path;  // resolved
  std::string container_path;       // /workspace/extra/<name>
  bool read_only = true;
};

// check_mount for each request, in order; logs every refusal with spdlog::warn naming the
// group, the requested path and the reason, and returns the allowed mounts only. A request
// whose container path is already taken by an earlier allowed mount is refused too (it would
// hide the earlier one).
std::vector<ValidatedMount> validate_mounts(const std::optional<MountAllowlist>& allowlist,
                                            std::span<const MountRequest> requests, bool is_main,
                                            const ProtectedPaths& protected_paths,
                                            std::string_view group_folder);

// An example allowlist file (plain JSON, no comments), for docs and `init`-style commands.
std::string mount_allowlist_template();

}  // namespace sb::sandbox
