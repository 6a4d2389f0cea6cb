#pragma once
// Writing JSON text directly into a string, for hot paths where building a JSON tree
// first would cost more than the answer itself (GET /messages).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sb {

// Appends `text` as a JSON string literal (with quotes). Escapes '"', '\\' and control
// characters; copies valid UTF-8 as is and replaces each invalid byte with U+FFFD, so the
// output is always valid JSON whatever the stored bytes are.
void append_json_string(std::string& out, std::string_view text);

// Appends a JSON string literal, or null.
void append_json_string_or_null(std::string& out, const std::optional<std::string>& text);

void append_json_int(std::string& out, std::int64_t value);

}  // namespace sb
