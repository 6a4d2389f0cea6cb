#pragma once
// A small asynchronous HTTP/1.1 client for talking to web APIs (JMAP): http and https URLs,
// one connection per request, a deadline on connecting (resolve + connect + TLS handshake)
// and one on the whole request, a cap on the answer's body, redirects followed only when
// asked (GET only, same scheme, the Authorization header only to the same origin), and a
// streaming variant that hands the body to a callback as it arrives (event streams: always
// GET, never redirected).
// Certificates are checked as src/common/tls_client.h does it. Header values are never
// logged nor put in error messages (they carry Authorization); URLs in messages lose their
// query.
//
// Errors are Result values with a message naming the server and the step; an answer with
// any status (4xx and 5xx included) is a success of the request: the caller reads status.
//
// Threading: call on the event-loop thread. cancel() may be called while requests run:
// they end promptly with an error, and so does every later request of this client.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace sb {

struct HttpClientOptions {
  bool verify_certificate = true;
  std::filesystem::path ca_file;  // empty: the system's trusted certificates
  std::chrono::milliseconds connect_timeout{30'000};
  std::chrono::milliseconds request_timeout{120'000};
  std::size_t max_response_bytes = 16 * 1024 * 1024;  // default body cap
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;  // absolute http(s) URL
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::optional<std::size_t> max_response_bytes;  // overrides the client's cap
  int max_redirects = 0;                          // followed for GET only, to the same scheme
};

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string url;  // where the answer came from (after redirects)

  // The first header of that name (case-insensitive), or "".
  std::string header(std::string_view name) const;
};

class HttpClient {
 public:
  // Error from make(): the CA file or the system's trusted certificates cannot be loaded.
  static Result<std::unique_ptr<HttpClient>> make(boost::asio::any_io_executor executor,
                                                  HttpClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `request` and reads the whole answer. Errors: a malformed URL, resolving,
  // connecting, TLS, a timeout, a body over the cap ("larger than N bytes"), too many
  // redirects, cancelled. The client must outlive the call.
  boost::asio::awaitable<Result<HttpResponse>> request(HttpRequest request);

  // Opens `request` (a GET) and, when the answer is 200, calls on_body(head, bytes) once with
  // empty bytes right after the head, then with the body's bytes as they arrive (chunked
  // transfer decoded), until the server ends the body (returns the head) or on_body returns
  // an error (returned). No byte for `inactivity` is an error, as is a cancel. Any other
  // status returns that answer with its body (capped) without calling on_body.
  using BodyHandler = std::function<Result<void>(const HttpResponse& head, std::string_view)>;
  boost::asio::awaitable<Result<HttpResponse>> stream(HttpRequest request, BodyHandler on_body,
                                                      std::chrono::milliseconds inactivity);

  // Ends every request of this client now and makes later ones fail at once.
  void cancel();
  bool cancelled() const;

  struct State;

 private:
  HttpClient(boost::asio::any_io_executor executor, HttpClientOptions options);
  std::shared_ptr<State> state_;
};

// "https://host:port/path" of `url` without user info, query or fragment, for messages.
std::string url_for_messages(std::string_view url);

}  // namespace sb
