#pragma once
// The client side of TLS as every outgoing connection of the daemon does it (SMTP
// submission, IMAP, JMAP over HTTPS): TLS 1.2 or later, the server's certificate checked
// against the system's trusted certificates or a configured CA file, and its name checked
// against the host we meant to reach (an IP literal against the certificate's IP entries).
// Verification can be turned off for self-signed test servers; callers warn about it.

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>
#include <filesystem>
#include <string>

#include "common/result.h"

namespace sb {

// Sets up `context` for client connections. Error: the CA file (or the system's store)
// cannot be loaded.
Result<void> configure_tls_client(boost::asio::ssl::context& context, bool verify_certificate,
                                  const std::filesystem::path& ca_file);

// Before the handshake of one connection to `host`: the name (or address) the certificate
// must carry, and SNI for names (never for address literals, RFC 6066 3).
Result<void> prepare_tls_handshake(SSL* ssl, const std::string& host, bool verify_certificate);

// "TLS handshake with <server> failed: <ec> (certificate: <why>)".
std::string tls_handshake_error(SSL* ssl, const boost::system::error_code& ec,
                                const std::string& server, bool verify_certificate);

}  // namespace sb
