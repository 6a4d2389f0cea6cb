#pragma once
// Router: maps a method and a path to a handler. Patterns are literal segments and
// "{name}" captures ("/messages/{id}/read"). A path that matches no pattern is 404; a path
// that matches with another method is 405 with the allowed methods.
//
// Threading: build at start-up, then match() from the event-loop thread.

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "api/http_types.h"

namespace sb::api {

using Handler = std::function<boost::asio::awaitable<Response>(Request&)>;

class Router {
 public:
  // Adds a route. `pattern` starts with '/'. Routes are tried in the order added.
  void add(std::string method, std::string pattern, Handler handler);

  struct Match {
    const Handler* handler;
    std::string pattern;                        // the route's pattern: a metrics label
    std::map<std::string, std::string> params;  // captures
  };
  struct NotFound {};
  struct MethodNotAllowed {
    std::string allow;  // "GET, POST"
    std::string pattern;
  };
  using Outcome = std::variant<Match, NotFound, MethodNotAllowed>;

  Outcome match(std::string_view method, std::string_view path) const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    Handler handler;
  };
  std::vector<Route> routes_;
};

}  // namespace sb::api
