// What a JMAP server answers (RFC 8620/8621), read as the JMAP client and receiver read it
// (channels/email/jmap_protocol.h): the session document and the URLs made from it, API
// answers and every per-method reader applied to each method response, problem details,
// upload answers and push StateChanges. One input is tried as each of them: the documents
// share a JSON syntax, so what the fuzzer learns for one helps the others.
//
// Properties checked beyond "no crash": server text made printable() is valid UTF-8 without
// control characters and bounded; session URLs are absolute http(s) URLs.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "channels/email/jmap_protocol.h"
#include "common/utf8.h"
#include "fuzz_support.h"

namespace {

using namespace sb::email;
using sb::fuzz::require;

void check_printable(const std::string& text, std::size_t max) {
  require(sb::is_valid_utf8(text), "printable() gives UTF-8");
  require(text.size() <= max + 3, "printable() is bounded");
  for (unsigned char c : text) require(c >= 0x20 && c != 0x7f, "printable() has no controls");
}

void check_error(const jmap::JmapError& error) {
  check_printable(error.description, 300);
  error.text();
}

void check_url(const std::string& url) {
  if (url.empty()) return;
  std::string scheme = url.substr(0, 8);  // schemes are case-insensitive
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  require(scheme.starts_with("https://") || scheme.starts_with("http://"), "absolute URLs");
}

void read_arguments(const boost::json::object& arguments) {
  if (auto set = jmap::read_set(arguments)) {
    for (const auto* errors : {&set->not_created, &set->not_updated, &set->not_destroyed}) {
      for (const auto& [id, error] : *errors) check_error(error);
    }
  }
  (void)jmap::read_mailboxes(arguments);
  (void)jmap::read_identities(arguments);
  (void)jmap::read_emails(arguments);
  (void)jmap::read_query(arguments);
  (void)jmap::read_changes(arguments);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body = sb::fuzz::as_text(data, size);

  if (auto session = jmap::parse_session(body, "https://jmap.example.org/.well-known/jmap")) {
    for (const auto* url : {&session->api_url, &session->download_url, &session->upload_url,
                            &session->event_source_url}) {
      check_url(*url);
      const std::string expanded = jmap::expand_template(*url, {{"accountId", "u1"},
                                                                {"blobId", "b/1 ?"},
                                                                {"type", "message/rfc822"},
                                                                {"name", "x.eml"},
                                                                {"types", "*"},
                                                                {"closeafter", "no"},
                                                                {"ping", "30"}});
      check_url(expanded);
    }
  }

  if (auto response = jmap::parse_response(body)) {
    for (const auto& method : response->responses) {
      read_arguments(method.arguments);
      if (auto answer = jmap::answer_for(*response, method.call_id, method.name)) {
        if (answer->error) check_error(*answer->error);
        require((answer->arguments != nullptr) != answer->error.has_value(),
                "an answer is arguments or an error, never both");
      }
    }
  }

  if (auto problem = jmap::parse_problem(body)) check_error(*problem);
  (void)jmap::read_upload(body);
  (void)jmap::read_state_change(body);
  check_printable(jmap::printable(body), 300);
  check_printable(jmap::printable(body, 16), 16);
  jmap::resolve_url("https://jmap.example.org/jmap/session", body);
  return 0;
}
