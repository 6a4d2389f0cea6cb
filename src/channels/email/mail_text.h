#pragma once
// Small text helpers shared by the email channel's parser, builder and policy: everything
// that leaves the parser is valid UTF-8, and header-like values are single lines.

#include <cstddef>
#include <string>
#include <string_view>

#include "common/utf8.h"

namespace sb::email {

// A value fit for one header line or one line of text: valid UTF-8, control characters
// (CR, LF, NUL, tab, DEL, …) turned into spaces, runs of spaces collapsed, trimmed, and cut
// to at most `max_bytes` on a character boundary.
std::string single_line(std::string_view value, std::size_t max_bytes);

// Decodes Windows-1252 (a superset of ISO-8859-1 in practice) to UTF-8: the fallback for
// text whose charset is missing, wrong or unknown. Its five unassigned bytes become U+FFFD.
std::string windows1252_to_utf8(std::string_view bytes);

// "512 bytes", "12.5 KiB", "10 MiB": a size for people to read.
std::string byte_size_text(std::size_t bytes);

std::string ascii_lower(std::string_view text);
bool iequals(std::string_view a, std::string_view b);

}  // namespace sb::email
