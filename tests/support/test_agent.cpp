// test_agent: a scriptable agent that speaks switchboard's agent protocol
// (docs/agent-protocol.md), for tests and the dispatch benchmark.
//
// It reads the input JSON from stdin and runs the prompt as a script. If the prompt contains
// <message …>…</message> elements, each element's content (XML-unescaped) is a script;
// otherwise the whole prompt is. A script is lines of commands:
//
//   reply <text>            a success result with <text>
//   fail <text>             an error result with error <text>
//   read <path>             a success result with the file's content, or "ERROR: <reason>"
//   write <path> <text>     writes <text> to the file; an error result only if that fails
//   connect <host> <port>   TCP connect (2 s timeout): result "connected" or "ERROR: <reason>"
//   env <NAME>              result: the variable's value, or "(unset)"
//   envdump                 result: every variable as NAME=VALUE lines
//   whoami                  result: the input JSON object
//   ipc <subdir> <json>     writes <json> atomically (".tmp" file, then rename) as a new
//                           *.json file in $SWITCHBOARD_IPC_DIR/<subdir>/ (default
//                           /workspace/ipc); an error result only if that fails
//   model <path> <body>     HTTP/1.1 POST of <body> to <path> over the unix socket
//                           $SWITCHBOARD_MODEL_SOCKET (default /run/switchboard/model.sock);
//                           result: the response body, or "ERROR: <reason>"
//   sleep <ms>              pauses
//   noise <text>            prints <text> on stdout outside the result markers
//   stderr <text>           prints <text> on stderr
//   big <bytes>             prints that many bytes on stdout, unframed
//   exit <code>             exits at once with <code>
//   finish                  exits 0 once the rest of this prompt or input file has run: a
//                           one-shot agent that answers every message of its batch and
//                           leaves without looking at input/ (follow-ups included)
//   started                 result: the agent's start time, microseconds since the epoch
//                           (CLOCK_REALTIME, read first thing in main)
//   once <path> <command>   if <path> does not exist: creates it and runs <command>;
//                           otherwise does nothing (so a retry gets past it)
//   hang                    ignores SIGTERM and input, sleeps forever
//
// A line may start with a trigger ("@Andy reply hi"); it is skipped. Anything else gives an
// error result naming the command. Every result carries
// newSessionId: the input's sessionId, or "test-session-<pid>".
//
// After the first script it watches $SWITCHBOARD_IPC_DIR/input every 10 ms: each *.json file
// (in name order) is read, deleted, and its "text" run as a script (with the same <message>
// extraction); an "_close" file is deleted and the agent exits 0.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

json::object g_input;
std::string g_session_id;
std::int64_t g_started_us = 0;  // CLOCK_REALTIME at the start of main, for `started`
bool g_finish = false;          // `finish` was run: exit 0 after the current text

void emit(bool success, const std::optional<std::string>& result,
          const std::optional<std::string>& error = std::nullopt) {
  json::object out;
  out["status"] = success ? "success" : "error";
  out["result"] = result ? json::value(*result) : json::value(nullptr);
  out["newSessionId"] = g_session_id;
  if (error) out["error"] = *error;
  std::cout << "---SWITCHBOARD_OUTPUT_START---\n"
            << json::serialize(out) << "\n---SWITCHBOARD_OUTPUT_END---" << std::endl;
}

void reply(const std::string& text) { emit(true, text); }
void fail(const std::string& text) { emit(false, std::nullopt, text); }

std::string errno_text() { return std::string("ERROR: ") + ::strerror(errno); }

std::string env_or(const char* name, const char* fallback) {
  const char* value = ::getenv(name);
  return value ? value : fallback;
}

std::string xml_unescape(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    bool replaced = false;
    for (const auto& [entity, ch] :
         {std::pair{"&amp;", '&'}, std::pair{"&lt;", '<'}, std::pair{"&gt;", '>'},
          std::pair{"&quot;", '"'}, std::pair{"&apos;", '\''}}) {
      const std::string_view e(entity);
      if (text.substr(i, e.size()) == e) {
        out += ch;
        i += e.size() - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += text[i];
  }
  return out;
}

// The contents of the <message …>…</message> elements, or the whole text if there are none.
std::vector<std::string> scripts_of(std::string_view text) {
  std::vector<std::string> scripts;
  std::size_t pos = 0;
  while ((pos = text.find("<message", pos)) != std::string_view::npos) {
    const std::size_t after = pos + 8;
    if (after >= text.size() || (text[after] != '>' && text[after] != ' ')) {
      pos = after;
      continue;
    }
    const std::size_t open_end = text.find('>', after);
    if (open_end == std::string_view::npos) break;
    const std::size_t close = text.find("</message>", open_end);
    if (close == std::string_view::npos) break;
    scripts.push_back(xml_unescape(text.substr(open_end + 1, close - open_end - 1)));
    pos = close + 10;
  }
  if (scripts.empty()) scripts.emplace_back(text);
  return scripts;
}

std::pair<std::string, std::string> split_word(std::string_view line) {
  const auto space = line.find(' ');
  if (space == std::string_view::npos) return {std::string(line), ""};
  return {std::string(line.substr(0, space)), std::string(line.substr(space + 1))};
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void cmd_read(const std::string& path) {
  errno = 0;
  const auto content = read_file(path);
  if (!content) return reply(errno ? errno_text() : "ERROR: cannot read " + path);
  reply(*content);
}

void cmd_write(const std::string& args) {
  const auto [path, text] = split_word(args);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    const std::string error = errno_text();
    if (fd >= 0) ::close(fd);
    return fail(error + " (write " + path + ")");
  }
  ::close(fd);
}

void cmd_connect(const std::string& args) {
  const auto [host, port] = split_word(args);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return reply(std::string("ERROR: ") + ::gai_strerror(rc));
  }
  std::string result = "ERROR: no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      result = errno_text();
      continue;
    }
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 2000) == 1) {
        int error = 0;
        socklen_t len = sizeof error;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
        errno = error;
        rc = error == 0 ? 0 : -1;
      } else {
        errno = ETIMEDOUT;
      }
    }
    result = rc == 0 ? "connected" : errno_text();
    ::close(fd);
    if (rc == 0) break;
  }
  ::freeaddrinfo(found);
  reply(result);
}

void cmd_ipc(const std::string& args) {
  static unsigned counter = 0;
  const auto [subdir, body] = split_word(args);
  const fs::path dir = fs::path(env_or("SWITCHBOARD_IPC_DIR", "/workspace/ipc")) / subdir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  const auto stamp = std::chrono::system_clock::now().time_since_epoch().count();
  const std::string name = std::to_string(stamp) + "-" + std::to_string(::getpid()) + "-" +
                           std::to_string(counter++) + ".json";
  const fs::path temp = dir / ("." + name + ".tmp");
  {
    std::ofstream out(temp, std::ios::binary);
    out << body;
    if (!out.flush()) return fail("ERROR: cannot write " + temp.string());
  }
  fs::rename(temp, dir / name, ec);
  if (ec) fail("ERROR: cannot rename into " + dir.string() + ": " + ec.message());
}

// The body of an HTTP/1.1 response, de-chunked if needed.
std::string response_body(const std::string& response, int& status) {
  status = 0;
  std::sscanf(response.c_str(), "HTTP/1.%*d %d", &status);
  const auto end = response.find("\r\n\r\n");
  if (end == std::string::npos) return "";
  std::string headers = response.substr(0, end);
  std::transform(headers.begin(), headers.end(), headers.begin(), ::tolower);
  std::string body = response.substr(end + 4);
  if (headers.find("transfer-encoding: chunked") == std::string::npos) return body;
  std::string out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    const auto line_end = body.find("\r\n", pos);
    if (line_end == std::string::npos) break;
    const std::size_t size = std::strtoul(body.c_str() + pos, nullptr, 16);
    if (size == 0) break;
    out += body.substr(line_end + 2, size);
    pos = line_end + 2 + size + 2;
  }
  return out;
}

void cmd_model(const std::string& args) {
  const auto [path, body] = split_word(args);
  const std::string socket_path = env_or("SWITCHBOARD_MODEL_SOCKET", "/run/switchboard/model.sock");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof address.sun_path) return reply("ERROR: socket path too long");
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    const std::string error = errno_text();
    if (fd >= 0) ::close(fd);
    return reply(error + " (connect " + socket_path + ")");
  }
  const std::string request = "POST " + path +
                              " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                              "Content-Length: " +
                              std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  std::size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::write(fd, request.data() + sent, request.size() - sent);
    if (n <= 0) {
      const std::string error = errno_text();
      ::close(fd);
      return reply(error);
    }
    sent += static_cast<std::size_t>(n);
  }
  std::string response;
  char buffer[65536];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof buffer)) > 0) response.append(buffer, n);
  ::close(fd);
  int status = 0;
  const std::string content = response_body(response, status);
  if (status < 200 || status > 299) {
    return reply("ERROR: HTTP " + std::to_string(status) + ": " + content);
  }
  reply(content);
}

void run_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.find_first_not_of(" \t") == std::string_view::npos) return;
  auto [command, args] = split_word(line);
  if (command.starts_with("@")) {  // "@Andy reply hi": the trigger addresses the agent
    if (args.find_first_not_of(" \t") == std::string_view::npos) return;
    std::tie(command, args) = split_word(args);
  }
  if (command == "reply") {
    reply(args);
  } else if (command == "fail") {
    fail(args);
  } else if (command == "read") {
    cmd_read(args);
  } else if (command == "write") {
    cmd_write(args);
  } else if (command == "connect") {
    cmd_connect(args);
  } else if (command == "env") {
    const char* value = ::getenv(args.c_str());
    reply(value ? value : "(unset)");
  } else if (command == "envdump") {
    std::string all;
    for (char** e = environ; *e != nullptr; ++e) all += std::string(*e) + "\n";
    reply(all);
  } else if (command == "whoami") {
    reply(json::serialize(g_input));
  } else if (command == "ipc") {
    cmd_ipc(args);
  } else if (command == "model") {
    cmd_model(args);
  } else if (command == "sleep") {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atol(args.c_str())));
  } else if (command == "noise") {
    std::cout << args << std::endl;
  } else if (command == "stderr") {
    std::cerr << args << std::endl;
  } else if (command == "big") {
    std::size_t left = std::strtoull(args.c_str(), nullptr, 10);
    const std::string line(99, 'x');
    while (left > 0) {
      const std::string chunk = left >= 100 ? line + "\n" : std::string(left, 'x');
      std::cout << chunk;
      left -= chunk.size();
    }
    std::cout.flush();
  } else if (command == "started") {
    reply(std::to_string(g_started_us));
  } else if (command == "exit") {
    std::cout.flush();
    std::cerr.flush();
    std::_Exit(std::atoi(args.c_str()));
  } else if (command == "finish") {
    g_finish = true;
  } else if (command == "once") {
    // Runs the rest of the line only if <path> does not exist yet (and creates it), so a
    // retry or a later run of the same messages gets past it.
    const auto [path, rest] = split_word(args);
    if (!std::filesystem::exists(path)) {
      std::ofstream(path) << "done once\n";
      run_line(rest);
    }
  } else if (command == "hang") {
    ::signal(SIGTERM, SIG_IGN);
    while (true) ::pause();
  } else {
    fail("unknown command: " + command);
  }
}

void run_text(std::string_view text) {
  for (const auto& script : scripts_of(text)) {
    std::istringstream lines(script);
    std::string line;
    while (std::getline(lines, line)) run_line(line);
  }
  if (g_finish) {
    std::cout.flush();
    std::exit(0);
  }
}

// Runs the follow-ups in input/ until _close appears.
[[noreturn]] void serve_input() {
  const fs::path input = fs::path(env_or("SWITCHBOARD_IPC_DIR", "/workspace/ipc")) / "input";
  while (true) {
    std::vector<fs::path> messages;
    std::error_code ec;
    for (fs::directory_iterator it(input, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.front() != '.' && it->path().extension() == ".json") messages.push_back(it->path());
    }
    std::sort(messages.begin(), messages.end());
    for (const auto& file : messages) {
      const auto content = read_file(file);
      fs::remove(file, ec);
      if (!content) continue;
      boost::system::error_code parse_error;
      const json::value message = json::parse(*content, parse_error);
      const auto* object = message.if_object();
      const auto* text = object ? object->if_contains("text") : nullptr;
      if (parse_error || text == nullptr || !text->is_string()) {
        fail("bad input file " + file.filename().string());
        continue;
      }
      run_text(text->get_string());
    }
    if (fs::exists(input / "_close", ec)) {
      fs::remove(input / "_close", ec);
      std::cout.flush();
      std::exit(0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

int main() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  g_started_us = static_cast<std::int64_t>(now.tv_sec) * 1'000'000 + now.tv_nsec / 1'000;
  const std::string stdin_text(std::istreambuf_iterator<char>(std::cin), {});
  boost::system::error_code ec;
  const json::value input = json::parse(stdin_text, ec);
  if (ec || !input.is_object()) {
    g_session_id = "test-session-" + std::to_string(::getpid());
    fail("test_agent: stdin is not a JSON object");
    return 1;
  }
  g_input = input.as_object();
  const auto* session = g_input.if_contains("sessionId");
  g_session_id = session && session->is_string() ? std::string(session->get_string())
                                                 : "test-session-" + std::to_string(::getpid());
  const auto* prompt = g_input.if_contains("prompt");
  run_text(prompt && prompt->is_string() ? std::string_view(prompt->get_string()) : "");
  serve_input();
}
