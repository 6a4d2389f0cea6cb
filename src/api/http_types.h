#pragma once
// The HTTP request and response as the API handlers see them: plain values, independent
// of the HTTP library, so that handlers and routing can be tested without a socket.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sb::api {

struct Request {
  std::string method;                         // "GET", "POST", ...
  std::string path;                           // decoded path, without the query
  std::map<std::string, std::string> query;   // decoded; the last of repeated keys wins
  std::map<std::string, std::string> params;  // from the route pattern ("{id}")
  std::string content_type;
  std::string body;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// Reads an origin-form request target ("/messages?chat=http%3Aalice&limit=10") into
// out.path (decoded, without the query) and out.query (decoded; the last of repeated keys
// wins). False for a target that is not origin-form (the server answers 400).
bool parse_request_target(std::string_view target, Request& out);

// {"error": message} with the given status.
Response error_response(int status, const std::string& message);

// A JSON body (already serialized) with the given status.
Response json_response(int status, std::string body);

}  // namespace sb::api
