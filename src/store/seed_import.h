#pragma once
// Import of the data files of the seed's email layer ("Telepathy", described in the seed
// document telepathy-port-status.txt) into the store, so that an installation moving over
// keeps its history:
//
//   messages.jsonl  {id, timestamp, source, subject, content, read}
//                   -> source (default "telepathy"), subject, content, timestamp,
//                      status read|unread, external_id "telepathy-messages:<id>" (without
//                      an id: "telepathy-messages-sha256:<hex SHA-256 of the line>"),
//                      metadata {"imported_from":"messages.jsonl","original_id":<id>}
//   inbox.jsonl     {timestamp, from, to, subject, message_id, body, processed}
//                   -> source "email", chat "email:<from address, lowercased>",
//                      sender <address>, sender_name <display name>, subject, content <body>,
//                      timestamp, status read|unread (processed),
//                      external_id "telepathy-inbox:<message_id>", or without a message_id
//                      "telepathy-inbox-sha256:<hex SHA-256 of the line>",
//                      metadata {"imported_from":"inbox.jsonl","to":…,"message_id":…}
//
// Timestamps are normalised to ISO-8601 Z; one without a zone is taken as UTC; a record
// without one gets the time of import. Importing is idempotent through the external ids:
// a second run stores nothing and counts every record as a duplicate.

#include <boost/json/object.hpp>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/message.h"
#include "common/result.h"
#include "store/store.h"

namespace sb {

enum class SeedFormat { auto_detect, messages, inbox };

// "auto", "messages", "inbox".
std::string_view to_string(SeedFormat format);

struct SeedImportOptions {
  std::size_t batch_size = 500;          // records per commit (Store::atomically)
  std::size_t max_line_bytes = 1 << 20;  // longer lines are reported and skipped
};

struct ImportReport {
  int imported = 0;    // records stored by this run
  int duplicates = 0;  // records already stored (by an earlier import)
  // Malformed lines, skipped: 1-based line number and what is wrong with it.
  std::vector<std::pair<int, std::string>> errors;
  // The format the file was read as (auto_detect only for a file with no records at all).
  SeedFormat detected = SeedFormat::auto_detect;
};

// The format a record belongs to: messages if it has "content" or "source", inbox if it has
// "body" or "from", else auto_detect (undecided).
SeedFormat detect_seed_format(const boost::json::object& record);

// Converts one line of a `format` file to the message to store (auto_detect: the format
// detect_seed_format() sees in this record). The error says what is wrong: not JSON, not an
// object, neither kind of record, a missing or mistyped field, a bad timestamp. `line` is
// the raw line without its line terminator.
Result<NewMessage> seed_record_to_message(std::string_view line, SeedFormat format);

// Imports `file` into `store` in batches of options.batch_size records, each one commit.
// The format is detected from the first line that is a record of either kind unless
// `format` forces it. Blank lines are skipped silently; malformed lines are reported in the
// returned report and skipped, the rest still imported. Returns an Error naming the file
// only if the file cannot be read or its format cannot be told (no record of either kind);
// batches committed before a read error stay committed (a rerun completes the import).
// A failing database throws StoreError as every Store call does.
//
// Threading: runs on the calling thread and uses `store` from it; blocks on disk and commits,
// so keep it off the event loop.
Result<ImportReport> import_seed_file(Store& store, const std::filesystem::path& file,
                                      SeedFormat format = SeedFormat::auto_detect,
                                      const SeedImportOptions& options = {});

}  // namespace sb
