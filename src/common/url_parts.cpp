#include "common/url_parts.h"

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

}  // namespace sb
