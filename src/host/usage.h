#pragma once
// Token usage read from model API responses (Anthropic Messages, OpenAI-compatible chat
// completions) as their bytes pass through the model proxy. Pure: no I/O, no logging.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sb::host {

enum class ModelProvider { anthropic, openai };

// "anthropic" or "openai".
std::string_view to_string(ModelProvider provider);

struct TokenUsage {
  // Anthropic: input_tokens + cache_creation_input_tokens + cache_read_input_tokens.
  // OpenAI: prompt_tokens (which already includes cached tokens).
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;  // Anthropic output_tokens, OpenAI completion_tokens
  std::string model;               // as the response names it; "" if it does not
};

// How a response body is framed: one JSON document, or a server-sent event stream
// (Content-Type text/event-stream, a request with "stream": true).
enum class BodyFormat { json, sse };

// Reads token usage out of a response body fed to it in pieces of any size, split anywhere.
//
// Memory is bounded: a JSON body is kept until finish() but only up to max_json_bytes (over
// it, the body is not parsed and the usage is unknown); an SSE stream is scanned line by
// line and keeps at most one event of at most max_line_bytes (longer events are skipped,
// which loses nothing: usage sits in small events).
//
// Malformed input (not JSON, a truncated stream, fields of the wrong type) never throws; it
// yields no usage, or the usage seen before the damage, and a note() saying why.
// Not thread-safe; one scanner per response.
class UsageScanner {
 public:
  static constexpr std::size_t kDefaultMaxJsonBytes = 8u << 20;
  static constexpr std::size_t kDefaultMaxLineBytes = 1u << 20;

  UsageScanner(ModelProvider provider, BodyFormat format,
               std::size_t max_json_bytes = kDefaultMaxJsonBytes,
               std::size_t max_line_bytes = kDefaultMaxLineBytes);

  // Scans the next bytes of the body (after any transfer decoding).
  void feed(std::string_view chunk);

  // Ends the body. The usage if the body reported one (SSE: if any event carried usage),
  // nullopt otherwise. Call once.
  std::optional<TokenUsage> finish();

  // Why finish() found no (or partial) usage: "body over 8388608 bytes, not parsed",
  // "body is not JSON: ...", "no usage in the response", "2 SSE events over 1048576 bytes
  // skipped". Empty when nothing went wrong.
  const std::string& note() const { return note_; }

 private:
  void feed_sse(std::string_view chunk);
  void end_sse_line();
  void dispatch_sse_event();
  void scan_sse_data(std::string_view data);

  ModelProvider provider_;
  BodyFormat format_;
  std::size_t max_json_bytes_;
  std::size_t max_line_bytes_;

  // JSON: the body so far, dropped once over the cap.
  std::string json_;
  bool json_oversized_ = false;

  // SSE: the current line and the data lines of the current event.
  std::string line_;
  std::string event_data_;
  bool line_oversized_ = false;
  bool event_oversized_ = false;
  bool after_cr_ = false;  // the previous byte was CR, so a following LF ends nothing new
  bool done_ = false;      // OpenAI "[DONE]" seen
  std::size_t skipped_events_ = 0;
  std::size_t malformed_events_ = 0;

  // Anthropic streams: the input parts as last reported.
  std::int64_t anthropic_input_uncached_ = 0;
  std::int64_t anthropic_input_cache_creation_ = 0;
  std::int64_t anthropic_input_cache_read_ = 0;

  bool seen_usage_ = false;
  TokenUsage usage_;
  std::string note_;
};

}  // namespace sb::host
