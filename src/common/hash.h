#pragma once
// Content hashes for stable ids (dedupe keys, Message-IDs derived from outbox keys).

#include <string>
#include <string_view>

namespace sb {

// SHA-256 of `data` as 64 lower-case hex digits. Throws std::runtime_error only if OpenSSL
// itself fails.
std::string sha256_hex(std::string_view data);

}  // namespace sb
