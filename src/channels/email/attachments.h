#pragma once
// Received attachments on disk: saved into the group's folder (which its agent sees) under
// attachments/, with names that are safe whatever the sender wrote, and described in the
// text the agent gets.

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "channels/email/mime_parser.h"
#include "common/result.h"

namespace sb::email {

struct SavedAttachment {
  std::string name;          // the sender's file name, made safe (safe_filename)
  std::string content_type;  // "application/pdf"
  std::size_t size = 0;      // bytes
  std::string path;          // relative to the group folder ("attachments/report.pdf"), or
                             // empty when not saved
  std::string skipped;       // why it was not saved (the parser's reason), or empty
};

// A file name made safe from what a sender wrote: only the last path component (after '/'
// or '\'), valid UTF-8 without control or bidirectional-override characters, without
// characters that Windows or shells treat specially, without leading dots or spaces, at
// most 100 bytes with its extension kept. An empty result becomes "attachment" with an
// extension from the content type ("attachment.pdf").
std::string safe_filename(std::string_view name, std::string_view content_type);

// Writes each kept attachment (those without `skipped`) to <group_folder>/attachments/,
// creating that directory; skipped ones are returned with their reason and no path. A name
// already taken gets a suffix ("report-2.pdf"); an existing file is never overwritten, and
// symbolic links planted in the folder (it is writable by the agent) are not followed.
// Files are flushed to disk before returning. Errors (the folder cannot be created or is not
// a directory, a write fails) name the path; files written by the failed call are removed.
// Blocking file I/O: call it on a worker thread, not the event loop. Calls that save into
// the same folder at the same time are safe (names are claimed with O_EXCL).
Result<std::vector<SavedAttachment>> save_attachments(
    const std::filesystem::path& group_folder, const std::vector<ParsedAttachment>& attachments);

// The lines appended to the agent's text, one per attachment, e.g.
//   Attachments:
//   - report.pdf (application/pdf, 120.5 KiB): attachments/report.pdf
//   - film.mp4 (video/mp4, 52 MiB): not saved, larger than the 10 MiB limit
// Empty for no attachments.
std::string describe_attachments(const std::vector<SavedAttachment>& attachments);

}  // namespace sb::email
