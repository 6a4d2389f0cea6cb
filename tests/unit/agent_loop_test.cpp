// The built-in agent's loop with a scripted model and a recording tool: tool rounds, limits,
// model errors, follow-ups while working, sessions and compaction.

#include "agent/agent_loop.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <deque>
#include <fstream>

#include "agent/agent_input.h"
#include "agent/provider.h"
#include "host/ipc_files.h"
#include "support/temp_dir.h"

namespace sb::agent {
namespace {

namespace fs = std::filesystem;

// Answers with the scripted responses in order (the last one repeats); records requests.
class ScriptedModel final : public ModelClient {
 public:
  std::deque<Result<ModelResponse>> script;
  std::vector<ModelRequest> requests;

  Result<ModelResponse> complete(const ModelRequest& request) override {
    requests.push_back(request);
    if (script.size() > 1) {
      auto next = std::move(script.front());
      script.pop_front();
      return next;
    }
    return script.front();
  }
};

ModelResponse text_answer(const std::string& text) {
  ModelResponse r;
  r.message = Message{Role::assistant, {Block::make_text(text)}};
  return r;
}

ModelResponse tool_answer(const std::string& name, boost::json::object input,
                          const std::string& id = "call_1") {
  ModelResponse r;
  r.stop = StopReason::tool_use;
  r.message = Message{Role::assistant, {Block::make_call(ToolCall{id, name, std::move(input)})}};
  return r;
}

// "note": appends its `text` to what it has seen; can drop a follow-up into input/ meanwhile.
class NoteTool final : public Tool {
 public:
  // `seen` and `follow_up` belong to the test: the loop owns (and destroys) the tool.
  NoteTool(fs::path ipc_root, std::vector<std::string>& seen, std::string& follow_up)
      : seen(seen), follow_up(follow_up), ipc_root_(std::move(ipc_root)) {
    spec_.name = "note";
    spec_.description = "notes a text";
    spec_.input_schema = {{"type", "object"}};
  }
  const ToolSpec& spec() const override { return spec_; }
  ToolOutput run(const boost::json::object& input, const ToolContext&) override {
    const auto* text = input.if_contains("text");
    if (!text || !text->is_string()) return ToolOutput::error("text is required");
    seen.emplace_back(text->get_string());
    if (!follow_up.empty()) {
      EXPECT_TRUE(host::write_input_message(ipc_root_, "family", follow_up).ok());
      follow_up.clear();
    }
    return {"noted " + seen.back(), false};
  }

  std::vector<std::string>& seen;
  std::string& follow_up;  // written to input/ during the next call

 private:
  ToolSpec spec_;
  fs::path ipc_root_;
};

std::string all_text(const ModelRequest& request) {
  std::string out;
  for (const auto& m : request.messages) {
    for (const auto& b : m.blocks) out += b.text + b.result.content + "\n";
  }
  return out;
}

class AgentLoopTest : public ::testing::Test {
 protected:
  AgentLoopTest() {
    fs::create_directories(input_dir());
    fs::create_directories(dir.path() / "group");
    input.prompt = "<messages><message sender=\"alice\">hello</message></messages>";
    input.group_folder = "family";
    input.chat_jid = "http:alice";
  }

  fs::path ipc_root() const { return dir.path() / "ipc"; }
  fs::path input_dir() const { return ipc_root() / "family" / "input"; }

  // Runs the loop (with _close already waiting unless `close` is false); its exit status.
  int run(bool close = true) {
    if (close) {
      EXPECT_TRUE(host::write_close_request(ipc_root(), "family").ok());
    }
    ToolList tools;
    tools.push_back(std::make_unique<NoteTool>(ipc_root(), seen, follow_up));
    context.workspace = dir.path() / "group";
    context.max_output_bytes = 1000;
    AgentEnvironment env;
    env.system_prompt = "You are Andy.";
    env.conversations_dir = dir.path() / "group" / "conversations";
    env.today = [] { return std::string("2026-11-21"); };
    env.emit = [this](const AgentOutput& output) { outputs.push_back(output); };
    env.log = [this](const std::string& line) { logs.push_back(line); };
    InputInbox inbox(input_dir());
    AgentLoop loop(input, model, std::move(tools), context, sessions, inbox, std::move(env));
    return loop.run();
  }

  test::TempDir dir;
  AgentInput input;
  ScriptedModel model;
  ToolContext context;
  SessionStore sessions{dir.path() / "session"};
  std::vector<std::string> seen;  // what the note tool was given
  std::string follow_up;
  std::vector<AgentOutput> outputs;
  std::vector<std::string> logs;
};

TEST_F(AgentLoopTest, AnswersSavesTheSessionAndExitsWhenAskedToClose) {
  model.script.push_back(text_answer("Hi Alice!"));
  EXPECT_EQ(run(), 0);
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_TRUE(outputs[0].success);
  EXPECT_EQ(outputs[0].result.value_or(""), "Hi Alice!");
  ASSERT_FALSE(outputs[0].session_id.empty());
  std::vector<std::string> warnings;
  auto saved = sessions.load(outputs[0].session_id, warnings);
  ASSERT_TRUE(saved.ok());
  ASSERT_EQ(saved->size(), 2u);
  EXPECT_EQ(saved->at(1).blocks.at(0).text, "Hi Alice!");
  EXPECT_EQ(model.requests.at(0).system, "You are Andy.");
}

TEST_F(AgentLoopTest, RunsToolCallsAndSendsTheirResultsBackUntilTheTurnEnds) {
  model.script.push_back(tool_answer("note", {{"text", "milk"}}, "call_a"));
  model.script.push_back(text_answer("Noted."));
  EXPECT_EQ(run(), 0);
  EXPECT_EQ(seen, std::vector<std::string>{"milk"});
  ASSERT_EQ(model.requests.size(), 2u);
  const Message& results = model.requests[1].messages.back();
  ASSERT_EQ(results.blocks.at(0).kind, Block::Kind::tool_result);
  EXPECT_EQ(results.blocks[0].result.call_id, "call_a");
  EXPECT_EQ(results.blocks[0].result.content, "noted milk");
  EXPECT_EQ(outputs.at(0).result.value_or(""), "Noted.");
}

TEST_F(AgentLoopTest, UnknownToolsAndUnreadableArgumentsGetErrorResults) {
  auto bad_args = tool_answer("note", {}, "call_b");
  bad_args.message.blocks[0].call.input_error = "not JSON";
  model.script.push_back(tool_answer("launch_rockets", {}, "call_a"));
  model.script.push_back(bad_args);
  model.script.push_back(text_answer("ok"));
  EXPECT_EQ(run(), 0);
  ASSERT_EQ(model.requests.size(), 3u);
  const auto& unknown = model.requests[1].messages.back().blocks.at(0).result;
  EXPECT_TRUE(unknown.is_error);
  EXPECT_NE(unknown.content.find("launch_rockets"), std::string::npos) << unknown.content;
  EXPECT_NE(unknown.content.find("note"), std::string::npos) << "lists the tools there are";
  const auto& unreadable = model.requests[2].messages.back().blocks.at(0).result;
  EXPECT_TRUE(unreadable.is_error);
  EXPECT_NE(unreadable.content.find("not JSON"), std::string::npos);
  EXPECT_TRUE(seen.empty()) << "the tool never ran with bad arguments";
}

TEST_F(AgentLoopTest, StopsAtTheToolRoundLimitAndSaysSo) {
  input.limits.max_tool_rounds = 2;
  model.script.push_back(tool_answer("note", {{"text", "again"}}));
  EXPECT_EQ(run(), 0);
  EXPECT_EQ(model.requests.size(), 2u);
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_FALSE(outputs[0].success);
  EXPECT_NE(outputs[0].error.value_or("").find("max_tool_rounds"), std::string::npos);
  EXPECT_NE(outputs[0].result.value_or("").find("I had to stop"), std::string::npos)
      << "the chat is told";
}

TEST_F(AgentLoopTest, AModelErrorEndsTheRunWithAnErrorResultAndSavesNothing) {
  model.script.push_back(make_error("the model provider refused the request: HTTP 401"));
  EXPECT_EQ(run(false), 1);
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_FALSE(outputs[0].success);
  EXPECT_FALSE(outputs[0].result.has_value());
  EXPECT_NE(outputs[0].error.value_or("").find("HTTP 401"), std::string::npos);
  EXPECT_FALSE(fs::exists(sessions.file(outputs[0].session_id)))
      << "the host hands the same messages over again";
}

TEST_F(AgentLoopTest, AFollowUpArrivingWhileItWorksReachesTheModelInTheSameTurn) {
  follow_up = "<messages><message sender=\"alice\">also eggs</message></messages>";
  model.script.push_back(tool_answer("note", {{"text", "milk"}}));
  model.script.push_back(text_answer("Milk and eggs noted."));
  EXPECT_EQ(run(), 0);
  ASSERT_EQ(model.requests.size(), 2u);
  EXPECT_NE(all_text(model.requests[1]).find("also eggs"), std::string::npos);
  ASSERT_EQ(outputs.size(), 1u) << "one answer for both";
}

TEST_F(AgentLoopTest, FollowUpsWaitingAtTheStartJoinTheFirstTurn) {
  ASSERT_TRUE(host::write_input_message(ipc_root(), "family", "second question").ok());
  model.script.push_back(text_answer("first answer"));
  model.script.push_back(text_answer("second answer"));
  EXPECT_EQ(run(), 0);
  ASSERT_EQ(outputs.size(), 1u) << "both waiting messages form one turn";
  EXPECT_NE(all_text(model.requests[0]).find("second question"), std::string::npos);
}

TEST_F(AgentLoopTest, ResumesTheNamedSessionSoTheModelSeesEarlierTurns) {
  const std::string id = SessionStore::new_id();
  ASSERT_TRUE(sessions
                  .append(id, {Message{Role::user, {Block::make_text("my name is Bob")}},
                               Message{Role::assistant, {Block::make_text("Hello Bob")}}})
                  .ok());
  input.session_id = id;
  model.script.push_back(text_answer("You are Bob."));
  EXPECT_EQ(run(), 0);
  EXPECT_EQ(outputs.at(0).session_id, id);
  ASSERT_EQ(model.requests.at(0).messages.size(), 3u);
  EXPECT_EQ(model.requests[0].messages[0].blocks[0].text, "my name is Bob");
}

TEST_F(AgentLoopTest, AMalformedSessionIdStartsANewSession) {
  input.session_id = "../../etc/passwd";
  model.script.push_back(text_answer("ok"));
  EXPECT_EQ(run(), 0);
  EXPECT_NE(outputs.at(0).session_id, "../../etc/passwd");
  EXPECT_TRUE(is_valid_session_id(outputs[0].session_id));
}

TEST_F(AgentLoopTest, NearTheContextWindowTheConversationIsArchivedAndSummarised) {
  const std::string id = SessionStore::new_id();
  std::vector<Message> earlier;
  for (int i = 0; i < 10; ++i) {
    earlier.push_back(
        Message{Role::user, {Block::make_text("Plan the trip " + std::string(300, 'x'))}});
    earlier.push_back(Message{Role::assistant, {Block::make_text("Sure " + std::to_string(i))}});
  }
  ASSERT_TRUE(sessions.append(id, earlier).ok());
  input.session_id = id;
  input.limits.context_window = 1000;  // the earlier turns hold ~800 tokens
  model.script.push_back(text_answer("SUMMARY: a trip is being planned"));
  model.script.push_back(text_answer("Continuing."));
  EXPECT_EQ(run(), 0);
  ASSERT_EQ(model.requests.size(), 2u);
  EXPECT_TRUE(model.requests[0].tools.empty()) << "the summary request offers no tools";
  const std::string next = all_text(model.requests[1]);
  EXPECT_NE(next.find("SUMMARY: a trip is being planned"), std::string::npos);
  EXPECT_EQ(next.find("Sure 3"), std::string::npos);
  const fs::path archive =
      dir.path() / "group/conversations/2026-11-21-plan-the-trip-xxxxxxxxxxxxxxxxxxxxxxxxxx.md";
  ASSERT_TRUE(fs::exists(archive)) << "archived as <date>-<first words>.md";
  std::vector<std::string> warnings;
  EXPECT_LT(sessions.load(id, warnings)->size(), 6u) << "the session file was rewritten";
}

TEST_F(AgentLoopTest, AScheduledTaskIsMarkedInItsPrompt) {
  input.is_scheduled_task = true;
  input.prompt = "Summarise the news";
  model.script.push_back(text_answer("news"));
  EXPECT_EQ(run(), 0);
  const std::string first = model.requests.at(0).messages.at(0).blocks.at(0).text;
  EXPECT_TRUE(first.starts_with("[SCHEDULED TASK")) << first;
  EXPECT_NE(first.find("Summarise the news"), std::string::npos);
}

TEST(AgentInput, ParsesTheHostsFieldsAndLimits) {
  auto in = parse_agent_input(
      R"({"prompt":"p","sessionId":"s-1","groupFolder":"g","chatJid":"http:a","isMain":true,
          "isScheduledTask":false,"assistantName":"Max","model":"m","provider":"openai",
          "network":true,"limits":{"maxToolRounds":3,"toolTimeoutMs":500},"unknown":1})");
  ASSERT_TRUE(in.ok()) << in.error().message;
  EXPECT_EQ(in->session_id.value_or(""), "s-1");
  EXPECT_TRUE(in->is_main);
  EXPECT_EQ(in->provider, "openai");
  EXPECT_TRUE(in->network);
  EXPECT_EQ(in->limits.max_tool_rounds, 3);
  EXPECT_EQ(in->limits.tool_timeout, std::chrono::milliseconds(500));
}

TEST(AgentInput, RefusesWhatItCannotWorkWith) {
  EXPECT_FALSE(parse_agent_input("not json").ok());
  EXPECT_FALSE(parse_agent_input("[]").ok());
  EXPECT_FALSE(parse_agent_input(R"({"prompt":""})").ok());
  EXPECT_FALSE(parse_agent_input(R"({"prompt":"p","isMain":"yes"})").ok());
  EXPECT_FALSE(parse_agent_input(R"({"prompt":"p","provider":"gemini"})").ok());
  auto limits = parse_agent_input(R"({"prompt":"p","limits":{"maxToolRounds":-1}})");
  ASSERT_FALSE(limits.ok());
  EXPECT_NE(limits.error().message.find("maxToolRounds"), std::string::npos);
}

TEST(SessionStoreTest, SkipsDamagedLinesWithAWarning) {
  test::TempDir dir;
  SessionStore store(dir.path());
  const std::string id = "s-damaged";
  ASSERT_TRUE(store.append(id, {Message{Role::user, {Block::make_text("one")}}}).ok());
  { std::ofstream(store.file(id), std::ios::app) << "{not json\n{\"role\":\"robot\"}\n"; }
  ASSERT_TRUE(store.append(id, {Message{Role::assistant, {Block::make_text("two")}}}).ok());
  std::vector<std::string> warnings;
  auto loaded = store.load(id, warnings);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->size(), 2u);
  EXPECT_EQ(warnings.size(), 2u);
}

}  // namespace
}  // namespace sb::agent
