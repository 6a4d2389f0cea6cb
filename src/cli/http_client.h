#pragma once
// A small blocking HTTP/1.1 client for the command line (`status`, `send`) and the tests:
// one request per call, over a new connection, with an overall deadline.

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace sb {

struct HttpReply {
  int status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string header(std::string_view name) const;  // case-insensitive; "" if absent
};

struct HttpCall {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8114;
  std::string method = "GET";
  std::string target = "/";
  std::string body;
  std::string token;  // sent as "Authorization: Bearer <token>" when not empty
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds timeout{10'000};
};

// Error: "cannot connect to 127.0.0.1:8114: Connection refused", "... timed out", etc.
Result<HttpReply> http_call(const HttpCall& call);

}  // namespace sb
