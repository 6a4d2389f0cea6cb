#pragma once
// The web_fetch tool: GET a web page for the model. Offered only when the group's sandbox has
// network (see make_workspace_tools).
//
// {url, max_bytes?}: http and https only (no user info). https verifies the server's
// certificate against the system's trusted certificates (OpenSSL's default paths), with SNI
// and host name verification. Follows up to 5 redirects (relative ones too, but never to a
// scheme other than http/https). Reads at most max_bytes of body (default 512 KiB, at most
// 8 MiB) and says so when it cut it. The whole call, redirects included, has
// ToolContext::timeout. The result holds the final URL, status line, content type and body
// as text (binary bodies are described, not shown), capped at max_output_bytes; a status
// of 400 or more makes it an error. Not cached, no cookies, no decompression.
//
// Threading: run() blocks the calling thread (it runs its own io_context).

#include <cstddef>

#include "agent/tool.h"

namespace sb::agent {

inline constexpr std::size_t kDefaultFetchBytes = 512 * 1024;
inline constexpr std::size_t kMaxFetchBytes = 8 * 1024 * 1024;
inline constexpr int kMaxRedirects = 5;

class WebFetchTool final : public Tool {
 public:
  WebFetchTool();
  const ToolSpec& spec() const override { return spec_; }
  ToolOutput run(const boost::json::object& input, const ToolContext& context) override;

 private:
  ToolSpec spec_;
};

}  // namespace sb::agent
