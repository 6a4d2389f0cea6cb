#include "common/tls_client.h"

#include <openssl/x509v3.h>

#include <boost/asio/ip/address.hpp>

namespace sb {

Result<void> configure_tls_client(boost::asio::ssl::context& context, bool verify_certificate,
                                  const std::filesystem::path& ca_file) {
  namespace ssl = boost::asio::ssl;
  SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
  if (!verify_certificate) {
    context.set_verify_mode(ssl::verify_none);
    return {};
  }
  context.set_verify_mode(ssl::verify_peer);
  boost::system::error_code ec;
  if (ca_file.empty()) {
    context.set_default_verify_paths(ec);
    if (ec) return make_error("cannot load the system's trusted certificates: " + ec.message());
  } else {
    context.load_verify_file(ca_file.string(), ec);
    if (ec) return make_error("cannot load the CA file " + ca_file.string() + ": " + ec.message());
  }
  return {};
}

Result<void> prepare_tls_handshake(SSL* ssl, const std::string& host, bool verify_certificate) {
  boost::system::error_code not_an_address;
  boost::asio::ip::make_address(host, not_an_address);
  if (verify_certificate) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int set = not_an_address ? SSL_set1_host(ssl, host.c_str())
                                   : X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
    if (set != 1) return make_error("cannot check certificates for " + host);
  }
  if (not_an_address && SSL_set_tlsext_host_name(ssl, host.c_str()) != 1) {
    return make_error("cannot set the TLS server name for " + host);
  }
  return {};
}

std::string tls_handshake_error(SSL* ssl, const boost::system::error_code& ec,
                                const std::string& server, bool verify_certificate) {
  std::string error = "TLS handshake with " + server + " failed: " + ec.message();
  const long verify = SSL_get_verify_result(ssl);
  if (verify_certificate && verify != X509_V_OK) {
    error += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
  }
  return error;
}

}  // namespace sb
