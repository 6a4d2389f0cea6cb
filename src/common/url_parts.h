#pragma once
// Reading the host and port of a parsed http(s) URL the same way wherever one is dialled
// (the model proxy's upstream, the agent's web_fetch).

#include <boost/url/url_view.hpp>
#include <cstdint>
#include <optional>
#include <string>

namespace sb {

// The host as a resolver wants it: a name or address, IPv6 without the brackets.
std::string url_host(const boost::urls::url_view& url);

// The URL's explicit port if it is a number from 1 to 65535; nullopt when it is anything
// else (boost::urls' port_number() wraps larger values silently). Call when has_port().
std::optional<std::uint16_t> url_port(const boost::urls::url_view& url);

}  // namespace sb
