// The SMTP receiver's parsing (channels/email/smtp_protocol.h) driven as a session would
// drive it: the input is what a client sends, CRLF-separated command lines, and after a DATA
// command the message text up to CRLF "." CRLF, then more commands (pipelining).
//
// Properties checked beyond "no crash": the data reader consumes the same bytes and finds the
// same message whether the text arrives whole or in pieces; every reply is well-formed lines
// (no CR or LF inside a line); a Received: header built from a client's HELO is one header
// field (no injected line, no control character).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "channels/email/smtp_protocol.h"
#include "fuzz_support.h"

namespace {

using namespace sb::email;
using sb::fuzz::require;

// Limits of SmtpServerOptions, scaled down so that the fuzzer reaches them.
constexpr std::size_t kMaxCommandLine = 512;
constexpr std::size_t kMaxMessage = 4096;
constexpr std::size_t kMaxTextLine = 1000;

void check_reply(const SmtpReply& reply) {
  const std::string text = format_reply(reply);
  require(text.size() >= 2 && text.ends_with("\r\n"), "a reply ends with CRLF");
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') require(i + 1 < text.size() && text[i + 1] == '\n', "CR only in CRLF");
    if (text[i] == '\n') require(i > 0 && text[i - 1] == '\r', "LF only in CRLF");
  }
}

void check_received(std::string_view helo, const std::string& recipient) {
  ReceivedTrace trace;
  trace.helo = std::string(helo);
  trace.client_address = "192.0.2.7";
  trace.hostname = "mx.example.org";
  trace.id = "smtp-1";
  trace.recipients = {recipient};
  const std::string header = received_header(trace);
  require(header.starts_with("Received: ") && header.ends_with("\r\n"), "Received: shape");
  for (std::size_t i = 0; i + 2 < header.size(); ++i) {
    const auto c = static_cast<unsigned char>(header[i]);
    if (c == '\r' || c == '\n') {
      require(header.compare(i, 3, "\r\n\t") == 0, "Received: continues with folded lines only");
      i += 2;
    } else {
      require(c >= 0x20 && c != 0x7f, "Received: holds no control characters");
    }
  }
}

// Reads the message text at the start of `input` twice (whole, and in pieces) and returns
// how many bytes it took.
std::size_t read_data(std::string_view input) {
  SmtpDataReader whole(kMaxMessage, kMaxTextLine);
  const std::size_t consumed = whole.consume(input);
  require(consumed <= input.size(), "consume() stays within its input");
  require(whole.done() || consumed == input.size(), "an unfinished text consumes everything");

  SmtpDataReader pieces(kMaxMessage, kMaxTextLine);
  std::size_t taken = 0;
  for (auto piece : sb::fuzz::Pieces::split(input.substr(0, consumed))) {
    require(!pieces.done(), "the end is not found before it arrives");
    taken += pieces.consume(piece);
  }
  require(taken == consumed && pieces.done() == whole.done(), "pieces find the same end");
  require(pieces.problem() == whole.problem(), "pieces find the same problem");
  require(pieces.size() == whole.size(), "pieces count the same size");
  if (whole.done()) {
    if (whole.problem() == SmtpDataReader::Problem::none) {
      const std::string message = whole.take_message();
      require(message == pieces.take_message(), "pieces give the same message");
      require(message.size() <= kMaxMessage, "the message is within its limit");
    } else {
      check_reply(whole.reply());
    }
  }
  return consumed;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input = sb::fuzz::as_text(data, size);
  auto recipients = RecipientSet::make({"muse@example.org", "\"quoted local\"@[192.0.2.1]"});
  require(static_cast<bool>(recipients), "the configured recipients are valid");
  std::string last_recipient = "muse@example.org";
  while (!input.empty()) {
    const std::size_t end = input.find("\r\n");
    std::string_view line = input.substr(0, end);
    input.remove_prefix(end == std::string_view::npos ? input.size() : end + 2);
    // The server answers 500 without parsing a line that is too long or holds a CR or LF.
    if (line.size() > kMaxCommandLine || line.find_first_of("\r\n") != std::string::npos) {
      continue;
    }

    const SmtpCommand command = parse_command(line);
    require(command.argument.empty() ||
                (command.argument.data() >= line.data() &&
                 command.argument.data() + command.argument.size() <= line.data() + line.size()),
            "the argument is a view into the line");
    switch (command.verb) {
      case SmtpVerb::helo:
      case SmtpVerb::ehlo:
        is_valid_domain(command.argument);
        check_received(command.argument, last_recipient);
        break;
      case SmtpVerb::mail: {
        auto parsed = parse_mail_from(command.argument);
        if (auto* refusal = std::get_if<SmtpReply>(&parsed)) {
          check_reply(*refusal);
        } else {
          const auto& from = std::get<MailFrom>(parsed);
          require(from.address.empty() || is_valid_mailbox(from.address), "a valid sender");
        }
        break;
      }
      case SmtpVerb::rcpt: {
        auto parsed = parse_rcpt_to(command.argument);
        if (auto* refusal = std::get_if<SmtpReply>(&parsed)) {
          check_reply(*refusal);
        } else {
          const auto& to = std::get<RcptTo>(parsed).address;
          if (auto match = recipients->match(to)) last_recipient = *match;
          check_received("client.example", to);
        }
        break;
      }
      case SmtpVerb::data:
        input.remove_prefix(read_data(input));
        break;
      default:
        break;
    }
  }
  return 0;
}
