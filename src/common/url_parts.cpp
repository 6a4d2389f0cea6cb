#include "common/url_parts.h"

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

namespace sb {

std::string url_host(const boost::urls::url_view& url) {
  return url.host_type() == boost::urls::host_type::ipv6 ? url.host_address()
                                                         : std::string(url.host());
}

std::optional<std::uint16_t> url_port(const boost::urls::url_view& url) {
  const std::string_view digits = url.port();
  unsigned long port = 0;
  for (char ch : digits) {
    port = port * 10 + static_cast<unsigned long>(ch - '0');
    if (port > 65535) return std::nullopt;
  }
  if (digits.empty() || port == 0) return std::nullopt;
  return static_cast<std::uint16_t>(port);
}

bool has_valid_path(const boost::urls::url_view& url) {
  return !url.has_authority() || url.encoded_path().empty() || url.encoded_path().front() == '/';
}

Result<HttpEndpoint> http_endpoint(const boost::urls::url_view& url) {
  HttpEndpoint endpoint;
  if (url.scheme_id() == boost::urls::scheme::https) {
    endpoint.tls = true;
  } else if (url.scheme_id() != boost::urls::scheme::http) {
    return make_error("is neither http nor https");
  }
  endpoint.host = url_host(url);
  if (endpoint.host.empty()) return make_error("has no host");
  if (!has_valid_path(url)) return make_error("has an invalid host or port");
  if (url.has_port()) {
    const auto port = url_port(url);
    if (!port) return make_error("has an invalid port");
    endpoint.port = std::to_string(*port);
  } else {
    endpoint.port = endpoint.tls ? "443" : "80";
  }
  endpoint.host_header = std::string(url.encoded_host_and_port());
  endpoint.request_target = url.encoded_path().empty() ? "/" : std::string(url.encoded_path());
  if (url.has_query()) endpoint.request_target += "?" + std::string(url.encoded_query());
  return endpoint;
}

Result<std::string> resolve_location(std::string_view base, std::string_view location) {
  auto base_url = boost::urls::parse_uri(base);
  auto reference = boost::urls::parse_uri_reference(location);
  boost::urls::url resolved;
  if (!base_url || !reference || !boost::urls::resolve(*base_url, *reference, resolved)) {
    return make_error("a redirect to an invalid URL '" + std::string(location) + "'");
  }
  resolved.remove_fragment();
  return std::string(resolved.buffer());
}

bool is_redirect_status(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace sb
