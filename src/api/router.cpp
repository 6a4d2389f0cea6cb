#include "api/router.h"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/url/parse.hpp>

#include "common/utf8.h"

namespace sb::api {
namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    auto end = path.find('/', i);
    if (end == std::string_view::npos) end = path.size();
    out.push_back(path.substr(i, end - i));
    i = end;
  }
  return out;
}

bool is_capture(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

bool parse_request_target(std::string_view target, Request& out) {
  auto url = boost::urls::parse_origin_form(target);
  if (!url) return false;
  out.path = url->path();
  for (auto param : url->params()) out.query[param.key] = param.value;
  return true;
}

Response json_response(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response error_response(int status, const std::string& message) {
  Response r;
  r.status = status;
  // The message may quote a request's path, whose percent-decoding need not be UTF-8; JSON
  // must be.
  r.body = boost::json::serialize(boost::json::object{{"error", to_valid_utf8(message)}});
  return r;
}

void Router::add(std::string method, std::string pattern, Handler handler) {
  Route route{std::move(method), std::move(pattern), {}, std::move(handler)};
  for (auto s : split_path(route.pattern)) route.segments.emplace_back(s);
  routes_.push_back(std::move(route));
}

Router::Outcome Router::match(std::string_view method, std::string_view path) const {
  auto parts = split_path(path);
  // A trailing slash is a different resource, except for the root.
  if (path.size() > 1 && path.back() == '/') return NotFound{};
  MethodNotAllowed not_allowed;
  for (const auto& route : routes_) {
    if (route.segments.size() != parts.size()) continue;
    std::map<std::string, std::string> params;
    bool ok = true;
    for (std::size_t i = 0; i < parts.size() && ok; ++i) {
      const auto& seg = route.segments[i];
      if (is_capture(seg)) {
        params.emplace(seg.substr(1, seg.size() - 2), std::string(parts[i]));
      } else {
        ok = seg == parts[i];
      }
    }
    if (!ok) continue;
    if (route.method == method) return Match{&route.handler, route.pattern, std::move(params)};
    if (not_allowed.allow.find(route.method) == std::string::npos) {
      if (!not_allowed.allow.empty()) not_allowed.allow += ", ";
      not_allowed.allow += route.method;
    }
    not_allowed.pattern = route.pattern;
  }
  if (!not_allowed.allow.empty()) return not_allowed;
  return NotFound{};
}

}  // namespace sb::api
