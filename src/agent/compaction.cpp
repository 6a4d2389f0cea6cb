#include "agent/compaction.h"

#include <boost/json.hpp>
#include <cctype>

#include "agent/provider.h"
#include "host/ipc_files.h"

namespace sb::agent {

namespace fs = std::filesystem;

namespace {

std::string first_user_text(const std::vector<Message>& messages) {
  for (const auto& m : messages) {
    if (m.role != Role::user) continue;
    for (const auto& b : m.blocks) {
      if (b.kind == Block::Kind::text && !b.text.empty()) return b.text;
    }
  }
  return {};
}

// Words of the text outside XML-like tags: "<messages><message …>Plan the trip</message>"
// gives "plan-the-trip".
std::string slug_of(const std::string& text) {
  std::string slug;
  bool in_tag = false, gap = false;
  for (const char c : text) {
    if (c == '<') in_tag = true;
    if (in_tag) {
      if (c == '>') in_tag = false, gap = true;
      continue;
    }
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) && u < 128) {
      if (gap && !slug.empty()) slug += '-';
      gap = false;
      slug += static_cast<char>(std::tolower(u));
      if (slug.size() >= 40) break;
    } else {
      gap = true;
    }
  }
  while (!slug.empty() && slug.back() == '-') slug.pop_back();
  return slug.empty() ? "conversation" : slug;
}

std::string cut(const std::string& text, std::size_t max) {
  if (text.size() <= max) return text;
  return text.substr(0, max) + "\n[… " + std::to_string(text.size() - max) + " characters cut …]";
}

}  // namespace

std::int64_t estimate_tokens(const std::vector<Message>& messages, const std::string& system) {
  std::size_t chars = system.size();
  for (const auto& m : messages) {
    for (const auto& b : m.blocks) {
      chars += b.text.size() + b.result.content.size() + b.call.name.size() +
               (b.kind == Block::Kind::tool_call ? boost::json::serialize(b.call.input).size() : 0);
    }
  }
  return static_cast<std::int64_t>(chars / 4);
}

std::string render_markdown(const std::vector<Message>& messages, std::size_t max_result_chars) {
  std::string out;
  for (const auto& m : messages) {
    out += m.role == Role::user ? "## User\n\n" : "## Assistant\n\n";
    for (const auto& b : m.blocks) {
      switch (b.kind) {
        case Block::Kind::text:
          out += b.text + "\n\n";
          break;
        case Block::Kind::tool_call:
          out += "Tool call `" + b.call.name + "`:\n\n```json\n" +
                 boost::json::serialize(b.call.input) + "\n```\n\n";
          break;
        case Block::Kind::tool_result:
          out += std::string(b.result.is_error ? "Tool error" : "Tool result") + ":\n\n```\n" +
                 cut(b.result.content, max_result_chars) + "\n```\n\n";
          break;
      }
    }
  }
  return out;
}

fs::path archive_path(const fs::path& dir, const std::string& date,
                      const std::vector<Message>& messages) {
  const std::string stem = date + "-" + slug_of(first_user_text(messages));
  fs::path path = dir / (stem + ".md");
  std::error_code ec;
  for (int n = 2; fs::exists(path, ec); ++n) path = dir / (stem + "-" + std::to_string(n) + ".md");
  return path;
}

Result<Compacted> compact(ModelClient& model, const std::string& model_name,
                          const std::vector<Message>& messages, const fs::path& conversations_dir,
                          const std::string& date, std::size_t max_transcript_chars) {
  const fs::path archive = archive_path(conversations_dir, date, messages);
  const std::string full =
      "# Conversation archived " + date + "\n\n" + render_markdown(messages, 100'000);
  if (auto written = host::write_file_atomically(archive, full); !written) {
    return make_error("cannot archive the conversation: " + written.error().message);
  }

  std::string transcript = render_markdown(messages, 2'000);
  if (transcript.size() > max_transcript_chars) {
    // The end of a conversation matters most for what comes next.
    transcript = "[… the beginning is cut …]\n\n" +
                 transcript.substr(transcript.size() - max_transcript_chars);
  }
  ModelRequest request;
  request.model = model_name;
  request.max_tokens = 2048;
  request.system =
      "You condense conversations between an assistant and the people it works for, so that "
      "the assistant can continue without the full text.";
  request.messages.push_back(Message{
      Role::user,
      {Block::make_text(
          "Summarise the conversation below for the assistant who will continue it. Keep: who "
          "the people are and what they want, decisions and facts learned, open tasks and "
          "promises, files created or changed, and the state of the latest request. Write it "
          "as compact notes.\n\n<conversation>\n" +
          transcript + "</conversation>")}});
  auto answer = model.complete(request);
  if (!answer)
    return make_error("the model could not summarise the conversation: " + answer.error().message);
  std::string summary;
  for (const auto& b : answer->message.blocks) {
    if (b.kind == Block::Kind::text) summary += b.text;
  }
  if (summary.empty()) return make_error("the model's summary was empty");

  const std::string relative = "conversations/" + archive.filename().string();
  Compacted out;
  out.archive = archive;
  out.messages.push_back(Message{
      Role::user,
      {Block::make_text("[This conversation was compacted to save space. The full text of what "
                        "came before is archived in " +
                        relative + " (read it with read_file if you need details). Summary:]\n\n" +
                        summary)}});
  out.messages.push_back(Message{
      Role::assistant, {Block::make_text("Understood. I will continue from this summary.")}});
  return out;
}

}  // namespace sb::agent
