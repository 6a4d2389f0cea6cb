#pragma once
// Base64 (RFC 4648, with padding, no line breaks): SASL credentials for SMTP and IMAP,
// HTTP basic authentication.

#include <string>
#include <string_view>

namespace sb {

std::string base64_encode(std::string_view bytes);

}  // namespace sb
