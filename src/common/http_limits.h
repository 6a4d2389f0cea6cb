#pragma once
// Bounds every reader of HTTP with Boost.Beast must respect, whatever the peer sends.
//
// Beast stores a header or trailer field of at most 65,533 bytes and throws
// std::length_error beyond that from inside its read operations, where the exception escapes
// the event loop and ends the process. Its parser bounds the header section by header_limit,
// but a chunked body's trailer section only by the buffer it reads from. So every buffer a
// Beast parser reads from is a beast::flat_buffer of at most kMaxHttpReadBuffer bytes (a
// larger trailer section fails the read with buffer_overflow), and header limits stay below
// it (kMaxHttpHeaderBytes).

#include <cstddef>

namespace sb {

inline constexpr std::size_t kMaxHttpReadBuffer = 65535;
inline constexpr std::size_t kMaxHttpHeaderBytes = 60 * 1024;

}  // namespace sb
