#include "agent/system_prompt.h"

#include <fstream>
#include <sstream>

namespace sb::agent {

namespace {

// The memory file's content, cut at the limit; empty when there is none.
std::string read_memory(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return {};
  std::string content(kMaxMemoryFileBytes + 1, '\0');
  in.read(content.data(), static_cast<std::streamsize>(content.size()));
  content.resize(static_cast<std::size_t>(in.gcount()));
  if (content.size() > kMaxMemoryFileBytes) {
    content.resize(kMaxMemoryFileBytes);
    content += "\n[… the file is longer than 64 KiB; the rest is not shown here …]";
  }
  return content;
}

}  // namespace

std::string build_system_prompt(const AgentInput& input, const PromptPaths& paths,
                                const std::string& now) {
  std::ostringstream p;
  p << "You are " << input.assistant_name
    << ", a personal assistant that people reach through switchboard (by email, chat or "
       "HTTP).\n\n"
    << "You are working for the group '" << input.group_folder << "'"
    << (input.is_main ? " (the main group: its administrator's own chat, trusted to manage "
                        "other groups and their tasks)"
                      : "")
    << ", in the chat " << input.chat_jid << ". The current time is " << now << ".\n\n"
    << "How your work reaches people:\n"
       "- New messages arrive as <messages><message sender=\"…\" time=\"…\">text</message>"
       "</messages>.\n"
       "- Your final answer of each turn is sent to the chat as it is. Be concise; use "
       "plain text or light Markdown.\n"
       "- Text inside <internal>…</internal> is never sent: use it for notes to yourself.\n"
       "- Use send_message to send something right away (a progress note, or more than one "
       "message); if you already said everything that way, make your final answer "
       "<internal>done</internal>.\n\n"
    << "Your workspace is " << paths.workspace.string()
    << ": files there persist between conversations. Its CLAUDE.md is your memory for this "
       "group: when you learn something worth keeping (preferences, facts, ongoing work), "
       "add it there with edit_file or write_file. Earlier conversations are archived in "
       "conversations/.\n";
  if (!input.is_main) {
    const std::string global = read_memory(paths.global / "CLAUDE.md");
    if (!global.empty()) {
      p << "\n## Global memory (" << (paths.global / "CLAUDE.md").string()
        << ", shared by all groups, read-only)\n\n"
        << global << "\n";
    }
  } else {
    p << "The global memory shared by all groups is " << (paths.global / "CLAUDE.md").string()
      << "; as the main group you may edit it.\n";
  }
  const std::string group = read_memory(paths.workspace / "CLAUDE.md");
  if (!group.empty()) {
    p << "\n## Group memory (" << (paths.workspace / "CLAUDE.md").string() << ")\n\n"
      << group << "\n";
  }
  return p.str();
}

std::string first_user_text(const AgentInput& input) {
  if (!input.is_scheduled_task) return input.prompt;
  return "[SCHEDULED TASK: this run was started by a scheduled task, not by a message from "
         "someone. Your final answer is sent to the chat " +
         input.chat_jid +
         "; if there is nothing worth telling, answer with only "
         "<internal>nothing to report</internal>.]\n\n" +
         input.prompt;
}

}  // namespace sb::agent
