// A configuration file (TOML) as the daemon and the client commands read it
// (config/config.h): parse_config for both purposes, and the listen-address reader.
//
// Properties checked beyond "no crash" (parse_config promises never to throw): a refusal
// names the file; an accepted configuration keeps the bounds the loader enforces (positive
// limits, header limits within what the HTTP readers allow).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/http_limits.h"
#include "config/config.h"
#include "fuzz_support.h"

namespace {

using sb::fuzz::require;

void check(const sb::Result<sb::Config>& config) {
  if (!config) {
    require(config.error().message.find("fuzz.toml") != std::string::npos,
            "an error names the file");
    return;
  }
  require(config->api.max_connections > 0 && config->api.max_body_bytes > 0, "positive limits");
  require(config->api.max_header_bytes <= sb::kMaxHttpHeaderBytes, "header limit within Beast's");
  require(config->api.port > 0, "a port to listen on");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = sb::fuzz::as_text(data, size);
  check(sb::parse_config(text, "fuzz.toml", sb::ConfigPurpose::daemon));
  check(sb::parse_config(text, "fuzz.toml", sb::ConfigPurpose::client));
  if (auto listen = sb::parse_host_port(text)) {
    require(listen->port > 0, "a parsed port is not 0");
    sb::is_loopback_host(listen->host);
  }
  return 0;
}
