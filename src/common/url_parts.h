#pragma once
// Reading the host and port of a parsed http(s) URL the same way wherever one is dialled
// (the model proxy's upstream, the agent's web_fetch, the daemon's HTTP client for JMAP).

#include <boost/url/url_view.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sb {

// The host as a resolver wants it: a name or address, IPv6 without the brackets.
std::string url_host(const boost::urls::url_view& url);

// The URL's explicit port if it is a number from 1 to 65535; nullopt when it is anything
// else (boost::urls' port_number() wraps larger values silently). Call when has_port().
std::optional<std::uint16_t> url_port(const boost::urls::url_view& url);

// False for a URL with an authority whose path neither is empty nor starts with '/'.
// Boost.URL 1.81 parses "http://host:80x/y" as port 80 and path "x/y" (and "http://[::1]x"
// as path "x") where RFC 3986 allows no such path: such a URL is malformed.
bool has_valid_path(const boost::urls::url_view& url);

// Where an http(s) request for a URL goes and what it says on its request line.
struct HttpEndpoint {
  bool tls = false;            // https
  std::string host;            // url_host()
  std::string port;            // explicit, else 443 / 80
  std::string host_header;     // host and port as written in the URL
  std::string request_target;  // origin-form: path (at least "/") and query
};

// Errors: "has no host", "has an invalid port", "has an invalid host or port" (see
// has_valid_path), "is neither http nor https" (to follow the URL as the caller quotes it).
Result<HttpEndpoint> http_endpoint(const boost::urls::url_view& url);

// The URL a Location header (absolute or relative) leads to from `base`, without fragment.
// Error: either is not a valid URL (reference).
Result<std::string> resolve_location(std::string_view base, std::string_view location);

// 301, 302, 303, 307, 308.
bool is_redirect_status(int status);

}  // namespace sb
