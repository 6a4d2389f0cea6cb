#pragma once
// UTF-8 checks and repairs for text from outside (mail, tool output, provider answers): what
// leaves these functions is valid UTF-8, so JSON and MIME built from it are valid too.

#include <cstddef>
#include <string>
#include <string_view>

namespace sb {

// The length (1-4) of the valid UTF-8 sequence starting at s[i], or 0 when it is not one
// (overlong forms, surrogates, code points above U+10FFFF and cut sequences included).
// Precondition: i < s.size().
std::size_t utf8_sequence_length(std::string_view s, std::size_t i);

bool is_valid_utf8(std::string_view bytes);

// `bytes` with each byte that is not part of a valid UTF-8 sequence replaced by U+FFFD.
std::string to_valid_utf8(std::string_view bytes);

// The longest prefix of `text` of at most `max_bytes` that does not cut a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes);

}  // namespace sb
