// The switchboard command line: help, version, exit codes, status, send, import.

#include <gtest/gtest.h>

#include <fstream>

#include "daemon_fixture.h"
#include "generated/version.h"

namespace sb::test {
namespace {
namespace json = boost::json;

TEST(Cli, VersionPrintsTheVersionAndExitsZero) {
  auto r = run_cli({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find(kVersion), std::string::npos) << r.out;
}

TEST(Cli, HelpListsTheSubcommands) {
  auto r = run_cli({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (auto cmd : {"run", "status", "send", "import"})
    EXPECT_NE(r.out.find(cmd), std::string::npos) << cmd;
}

TEST(Cli, UsageErrorsExitWithTwo) {
  EXPECT_EQ(run_cli({}).exit_code, 2);
  EXPECT_EQ(run_cli({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(run_cli({"run", "--config", "/does/not/exist.toml"}).exit_code, 2);
}

TEST(Cli, ConfigErrorExitsWithTwoNamingKeyAndLine) {
  TempDir dir;
  auto file = dir.path() / "bad.toml";
  std::ofstream(file) << "data_dir = \"x\"\n[api]\nlissen = \"127.0.0.1:1\"\n";
  auto r = run_cli({"run", "--config", file.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bad.toml:3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("api.lissen"), std::string::npos) << r.err;
}

TEST(Cli, StatusWithoutADaemonFailsWithOneAndSaysWhere) {
  TempDir dir;
  Daemon daemon(dir.path());  // configured, never started
  auto r = run_cli({"status", "--config", daemon.config_file().string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("127.0.0.1:" + std::to_string(daemon.port())), std::string::npos) << r.err;
}

TEST(Cli, SendStoresAMessageAndStatusShowsTheCounts) {
  TempDir dir;
  Daemon daemon(dir.path());
  ASSERT_TRUE(daemon.start()) << daemon.log();
  auto cfg = daemon.config_file().string();
  auto sent = run_cli({"send", "--config", cfg, "--chat", "http:me", "--subject", "Hi", "hello"});
  EXPECT_EQ(sent.exit_code, 0) << sent.err;
  EXPECT_NE(sent.out.find("stored message 1"), std::string::npos) << sent.out;
  auto from_stdin = run_cli({"send", "--config", cfg, "-"}, "from stdin\n");
  EXPECT_EQ(from_stdin.exit_code, 0) << from_stdin.err;

  auto messages = daemon.json("GET", "/messages?order=asc", 200).as_array();
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].at("chat"), "http:me");
  EXPECT_EQ(messages[0].at("subject"), "Hi");
  EXPECT_EQ(messages[0].at("source"), "cli");
  EXPECT_EQ(messages[1].at("content"), "from stdin\n");

  auto status = run_cli({"status", "--config", cfg});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find(": ok"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("2 stored, 2 unread"), std::string::npos) << status.out;

  auto refused = run_cli({"send", "--config", cfg, "--chat", "not-a-chat", "x"});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("chat"), std::string::npos) << refused.err;
}

TEST(Cli, ImportIsIdempotentAndReportsMalformedLinesByNumber) {
  TempDir dir;
  Daemon daemon(dir.path());
  auto cfg = daemon.config_file().string();
  auto messages = dir.path() / "messages.jsonl";
  std::ofstream(messages)
      << R"({"id": "m1", "timestamp": "2026-05-01T10:00:00", "source": "email", "subject": "A", "content": "first", "read": true})"
      << "\n"
      << R"({"id": "m2", "timestamp": "2026-05-02T11:00:00Z", "source": "reflection", "subject": null, "content": "second", "read": false})"
      << "\n{this is not json\n"
      << R"({"id": "m3", "timestamp": "2026-05-03T12:00:00+02:00", "source": "system", "content": "third", "read": false})"
      << "\n";
  auto inbox = dir.path() / "inbox.jsonl";
  std::ofstream(inbox)
      << R"({"timestamp": "2026-05-04T09:00:00", "from": "Alice <Alice@Example.org>", "to": "muse@hydrascale.net", "subject": "Q", "message_id": "<q1@example.org>", "body": "question?", "processed": true})"
      << "\n";

  auto first = run_cli({"import", "--config", cfg, messages.string(), inbox.string()});
  EXPECT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.err.find("messages.jsonl:3"), std::string::npos) << first.err;
  EXPECT_NE(first.out.find("3 imported"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("1 imported"), std::string::npos) << first.out;

  auto second = run_cli({"import", "--config", cfg, messages.string(), inbox.string()});
  EXPECT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.out.find("0 imported, 3 already there"), std::string::npos) << second.out;

  ASSERT_TRUE(daemon.start()) << daemon.log();
  auto all = daemon.json("GET", "/messages?order=asc", 200).as_array();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].at("content"), "first");
  EXPECT_EQ(all[0].at("read"), true);
  EXPECT_EQ(all[0].at("timestamp"), "2026-05-01T10:00:00.000Z");
  EXPECT_EQ(all[2].at("timestamp"), "2026-05-03T10:00:00.000Z");
  EXPECT_EQ(all[3].at("chat"), "email:alice@example.org");
  EXPECT_EQ(all[3].at("source"), "email");
  // The seed's own ids still reach the imported messages.
  EXPECT_EQ(daemon.json("GET", "/messages/m2", 200).at("content"), "second");
  daemon.json("POST", "/messages/m2/read", 200);
  EXPECT_EQ(daemon.json("GET", "/health", 200).at("messages").at("unread"), 1);
}

}  // namespace
}  // namespace sb::test
