#include "config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "config/units.h"

namespace sb {
namespace {

using std::chrono::milliseconds;
using testing::AllOf;
using testing::HasSubstr;
using testing::Not;
using testing::StartsWith;

Config parse_ok(std::string_view text) {
  auto config = parse_config(text, "t.toml");
  EXPECT_TRUE(config.ok()) << config.error().message;
  return config.ok() ? config.value() : Config{};
}

std::string parse_error(std::string_view text) {
  auto config = parse_config(text, "t.toml");
  EXPECT_FALSE(config.ok()) << "expected an error for:\n" << text;
  return config.ok() ? std::string() : config.error().message;
}

// An environment variable that no other test or process uses, removed when the test ends.
class ScopedEnv {
 public:
  explicit ScopedEnv(std::string suffix)
      : name_("SWITCHBOARD_CONFIG_TEST_" + std::to_string(::getpid()) + "_" + suffix) {
    ::unsetenv(name_.c_str());
  }
  ~ScopedEnv() { ::unsetenv(name_.c_str()); }
  void set(const char* value) { ::setenv(name_.c_str(), value, 1); }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

TEST(ConfigDefaults, EmptyTextGivesTheBuiltInDefaults) {
  const Config config = parse_ok("");
  EXPECT_EQ(config.data_dir.string(), "data");
  EXPECT_EQ(config.database_file().string(), "data/switchboard.db");
  EXPECT_EQ(config.api.host, "127.0.0.1");
  EXPECT_EQ(config.api.port, 8114);
  EXPECT_EQ(config.api.token, "");
  EXPECT_EQ(config.api.token_source, "");
  EXPECT_EQ(config.api.max_body_bytes, 1024u * 1024);
  EXPECT_EQ(config.api.max_header_bytes, 16u * 1024);
  EXPECT_EQ(config.api.max_connections, 256u);
  EXPECT_EQ(config.api.request_timeout, milliseconds(10'000));
  EXPECT_EQ(config.api.idle_timeout, milliseconds(60'000));
  EXPECT_EQ(config.api.shutdown_grace, milliseconds(5'000));
  EXPECT_EQ(config.log.level, "info");
  EXPECT_EQ(config.log.format, LogFormat::plain);
  EXPECT_TRUE(config.store.synchronous_full);
}

TEST(ConfigDefaults, CommentsAndEmptyTablesKeepTheDefaults) {
  const Config config = parse_ok("# nothing yet\n[api]\n[log]\n[store]\n");
  EXPECT_EQ(config.api.port, 8114);
  EXPECT_EQ(config.log.level, "info");
}

TEST(ConfigParse, EveryKeyOverridesItsDefault) {
  const Config config = parse_ok(R"(
data_dir = "/var/lib/switchboard"

[api]
listen = "0.0.0.0:9000"
token = "s3cret-token"
max_body_bytes = "2MiB"
max_header_bytes = 8192
max_connections = 32
request_timeout = "3s"
idle_timeout = "2m"
shutdown_grace = "1500ms"

[log]
level = "debug"
format = "json"

[store]
synchronous = "normal"
)");
  EXPECT_EQ(config.data_dir.string(), "/var/lib/switchboard");
  EXPECT_EQ(config.database_file().string(), "/var/lib/switchboard/switchboard.db");
  EXPECT_EQ(config.api.host, "0.0.0.0");
  EXPECT_EQ(config.api.port, 9000);
  EXPECT_EQ(config.api.token, "s3cret-token");
  EXPECT_EQ(config.api.token_source, "api.token");
  EXPECT_EQ(config.api.max_body_bytes, 2u * 1024 * 1024);
  EXPECT_EQ(config.api.max_header_bytes, 8192u);
  EXPECT_EQ(config.api.max_connections, 32u);
  EXPECT_EQ(config.api.request_timeout, milliseconds(3'000));
  EXPECT_EQ(config.api.idle_timeout, milliseconds(120'000));
  EXPECT_EQ(config.api.shutdown_grace, milliseconds(1'500));
  EXPECT_EQ(config.log.level, "debug");
  EXPECT_EQ(config.log.format, LogFormat::json);
  EXPECT_FALSE(config.store.synchronous_full);
}

TEST(ConfigParse, AKeyLeftOutKeepsItsDefaultWhileItsNeighbourChanges) {
  const Config config = parse_ok("[api]\nmax_connections = 3\n");
  EXPECT_EQ(config.api.max_connections, 3u);
  EXPECT_EQ(config.api.max_body_bytes, 1024u * 1024);
  EXPECT_EQ(config.api.port, 8114);
}

TEST(ConfigParse, DottedKeysAreTheSameAsTables) {
  const Config config = parse_ok("api.listen = \":7000\"\nlog.level = \"warn\"\n");
  EXPECT_EQ(config.api.port, 7000);
  EXPECT_EQ(config.log.level, "warn");
}

TEST(ConfigParse, EachLogLevelIsAccepted) {
  for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
    const Config config = parse_ok(std::string("[log]\nlevel = \"") + level + "\"\n");
    EXPECT_EQ(config.log.level, level);
  }
}

TEST(ConfigErrors, UnknownTopLevelKeyIsAnErrorNamingKeyAndLine) {
  EXPECT_EQ(parse_error("data_dir = \"x\"\n\nfrobnicate = 1\n"),
            "t.toml:3: unknown key 'frobnicate'");
}

TEST(ConfigErrors, UnknownKeyInATableNamesTheDottedKeyAndLineAndSuggestsTheNearOne) {
  EXPECT_EQ(parse_error("[api]\nmax_connections = 4\n\n# typo below\nlissen = \":1\"\n"),
            "t.toml:5: unknown key 'api.lissen'; did you mean 'api.listen'?");
}

TEST(ConfigErrors, UnknownTableIsAnErrorAtItsHeaderLine) {
  EXPECT_EQ(parse_error("[log]\nlevel = \"info\"\n\n[apii]\nlisten = \":1\"\n"),
            "t.toml:4: unknown key 'apii'; did you mean 'api'?");
}

TEST(ConfigErrors, UnknownSubTableOfAKnownTableIsAnError) {
  EXPECT_EQ(parse_error("[api]\nlisten = \":1\"\n[api.tls]\ncert = \"x\"\n"),
            "t.toml:3: unknown key 'api.tls'");
}

TEST(ConfigErrors, WrongTypeNamesKeyLineAndWhatWasGiven) {
  EXPECT_EQ(parse_error("[api]\nmax_connections = \"many\"\n"),
            "t.toml:2: 'api.max_connections' must be a positive integer (got 'many')");
  EXPECT_EQ(parse_error("data_dir = 42\n"), "t.toml:1: 'data_dir' must be a string (got 42)");
  EXPECT_EQ(parse_error("[api]\nlisten = 8114\n"),
            "t.toml:2: 'api.listen' must be a string (got 8114)");
  EXPECT_EQ(parse_error("[log]\nformat = true\n"),
            "t.toml:2: 'log.format' must be one of plain, json (got true)");
}

TEST(ConfigErrors, AScalarWhereATableBelongsIsAnError) {
  EXPECT_EQ(parse_error("api = \"127.0.0.1:80\"\n"),
            "t.toml:1: 'api' must be a table (got '127.0.0.1:80')");
  EXPECT_EQ(parse_error("[[store]]\nsynchronous = \"full\"\n"),
            "t.toml:1: 'store' must be a table (got an array)");
}

TEST(ConfigErrors, BadEnumValueListsTheChoices) {
  EXPECT_EQ(parse_error("\n\n\n\n[log]\nlevel = \"loud\"\n"),
            "t.toml:6: 'log.level' must be one of trace, debug, info, warn, error, critical, "
            "off (got 'loud')");
  EXPECT_EQ(parse_error("[log]\nformat = \"xml\"\n"),
            "t.toml:2: 'log.format' must be one of plain, json (got 'xml')");
  EXPECT_EQ(parse_error("[store]\nsynchronous = \"off\"\n"),
            "t.toml:2: 'store.synchronous' must be one of full, normal (got 'off')");
}

TEST(ConfigErrors, EnumValuesAreCaseSensitive) {
  EXPECT_THAT(parse_error("[log]\nlevel = \"INFO\"\n"), HasSubstr("(got 'INFO')"));
}

TEST(ConfigErrors, ZeroAndNegativeCountsAreRejected) {
  EXPECT_EQ(parse_error("[api]\nmax_connections = 0\n"),
            "t.toml:2: 'api.max_connections' must be a positive integer (got 0)");
  EXPECT_EQ(parse_error("[api]\nmax_connections = -5\n"),
            "t.toml:2: 'api.max_connections' must be a positive integer (got -5)");
  EXPECT_EQ(parse_error("[api]\nmax_connections = 2.5\n"),
            "t.toml:2: 'api.max_connections' must be a positive integer (got 2.5)");
}

TEST(ConfigErrors, CountsAboveTheirBoundAreRejected) {
  EXPECT_EQ(parse_error("[api]\nmax_connections = 100001\n"),
            "t.toml:2: 'api.max_connections' must be at most 100000 (got 100001)");
  EXPECT_EQ(parse_ok("[api]\nmax_connections = 100000\n").api.max_connections, 100000u);
}

TEST(ConfigErrors, EveryProblemIsReportedInFileOrder) {
  // toml++ keeps keys sorted by name; the report must follow the file instead.
  EXPECT_EQ(parse_error("[log]\nlevel = \"loud\"\n[api]\nzzz = 1\naaa = 2\n"),
            "t.toml:2: 'log.level' must be one of trace, debug, info, warn, error, critical, "
            "off (got 'loud')\n"
            "t.toml:4: unknown key 'api.zzz'\n"
            "t.toml:5: unknown key 'api.aaa'");
}

TEST(ConfigErrors, EmptyDataDirIsRejected) {
  EXPECT_EQ(parse_error("data_dir = \"\"\n"), "t.toml:1: 'data_dir' must not be empty");
}

TEST(ConfigErrors, SyntaxErrorGivesOriginLineAndTheParsersDescription) {
  const std::string message = parse_error("[api]\nlisten = \":1\"\nmax_connections = \n");
  EXPECT_THAT(message, StartsWith("t.toml:3: "));
  EXPECT_GT(message.size(), std::string("t.toml:3: ").size());
}

// Found by fuzzing (fuzz/corpus/config_fuzz/crash-table-header-without-key.toml): toml++
// asserted on it, which aborted a build without NDEBUG.
TEST(ConfigErrors, TableHeaderThatDoesNotStartWithAKeyIsASyntaxError) {
  EXPECT_THAT(parse_error("data_dir = \"/x\"\n\n[(((api]\nlisten = \":1\"\n"),
              StartsWith("t.toml:3: "));
  EXPECT_THAT(parse_error("[[ (x]]\n"), StartsWith("t.toml:1: "));
}

// Found by fuzzing (fuzz/corpus/config_fuzz/crash-non-ascii-outside-a-string.toml): toml++
// 3.3 reached __builtin_unreachable on such a character (undefined behaviour).
TEST(ConfigErrors, NonAsciiOutsideAStringIsAnErrorAndInsideOneIsKept) {
  EXPECT_EQ(parse_error("# caf\xc3\xa9\n\n\xc3\xa9 = 1\n"),
            "t.toml:3: a character outside ASCII stands outside a string or a comment");
  EXPECT_THAT(parse_error("data_dir = \"/x\" \xc2\xa0\n"), StartsWith("t.toml:1: "));
  const Config config = parse_ok(
      "# \xc3\xbc"
      "ber\ndata_dir = \"Caf\xc3\xa9 \\\" \xc3\xa9\"\n"
      "[agent]\nimage = '''\n/srv/Z\xc3\xbc"
      "rich''' # \xc3\xa9\n");
  EXPECT_EQ(config.data_dir.string(), "Caf\xc3\xa9 \" \xc3\xa9");
  EXPECT_EQ(config.agent.image,
            "/srv/Z\xc3\xbc"
            "rich");
}

TEST(ConfigErrors, DuplicateKeyIsASyntaxErrorAtTheSecondOne) {
  EXPECT_THAT(parse_error("[api]\nmax_connections = 1\nmax_connections = 2\n"),
              StartsWith("t.toml:3: "));
}

TEST(ConfigSizes, IntegerBytesAndEveryUnitAreAccepted) {
  EXPECT_EQ(parse_ok("[api]\nmax_body_bytes = 2048\n").api.max_body_bytes, 2048u);
  EXPECT_EQ(parse_ok("[api]\nmax_body_bytes = \"1MiB\"\n").api.max_body_bytes, 1048576u);
  EXPECT_EQ(parse_ok("[api]\nmax_body_bytes = \"512KiB\"\n").api.max_body_bytes, 524288u);
  EXPECT_EQ(parse_ok("[api]\nmax_body_bytes = \"10MB\"\n").api.max_body_bytes, 10'000'000u);
  EXPECT_EQ(parse_ok("[api]\nmax_body_bytes = \"4KB\"\n").api.max_body_bytes, 4000u);
  EXPECT_EQ(parse_ok("[api]\nmax_body_bytes = \"100B\"\n").api.max_body_bytes, 100u);
  EXPECT_EQ(parse_ok("[api]\nmax_body_bytes = \"1GiB\"\n").api.max_body_bytes, 1u << 30);
  EXPECT_EQ(parse_ok("[api]\nmax_header_bytes = \"32 KiB\"\n").api.max_header_bytes, 32768u);
}

TEST(ConfigSizes, MalformedSizesAreRejectedListingTheUnits) {
  for (const char* bad : {"10Mb", "1.5MiB", "MiB", "", "-1KiB", "+1KiB", "10 MiB extra", "1024"}) {
    const std::string message =
        parse_error(std::string("[api]\nmax_body_bytes = \"") + bad + "\"\n");
    EXPECT_THAT(message,
                AllOf(StartsWith("t.toml:2: 'api.max_body_bytes' must be a number of "
                                 "bytes or a string with a unit"),
                      HasSubstr("KiB, MiB, GiB"), HasSubstr(std::string("(got '") + bad + "'")))
        << bad;
  }
  EXPECT_THAT(parse_error("[api]\nmax_body_bytes = 1.5\n"), HasSubstr("got 1.5"));
}

TEST(ConfigSizes, ZeroAndNegativeSizesAreRejected) {
  EXPECT_EQ(parse_error("[api]\nmax_body_bytes = 0\n"),
            "t.toml:2: 'api.max_body_bytes' must be greater than 0 (got 0)");
  EXPECT_EQ(parse_error("[api]\nmax_body_bytes = \"0KiB\"\n"),
            "t.toml:2: 'api.max_body_bytes' must be greater than 0 (got '0KiB')");
  EXPECT_EQ(parse_error("[api]\nmax_header_bytes = -1\n"),
            "t.toml:2: 'api.max_header_bytes' must be greater than 0 (got -1)");
}

TEST(ConfigSizes, SizesAboveTheirBoundAreRejected) {
  EXPECT_EQ(parse_error("[api]\nmax_body_bytes = \"1025MiB\"\n"),
            "t.toml:2: 'api.max_body_bytes' must be at most 1GiB (got '1025MiB')");
  EXPECT_EQ(parse_error("[api]\nmax_header_bytes = \"64KiB\"\n"),
            "t.toml:2: 'api.max_header_bytes' must be at most 60KiB (got '64KiB')");
  // Too large for 64 bits: still reported as over the bound, not wrapped around to a small value.
  EXPECT_EQ(parse_error("[api]\nmax_body_bytes = \"99999999999999999999GiB\"\n"),
            "t.toml:2: 'api.max_body_bytes' must be at most 1GiB (got "
            "'99999999999999999999GiB')");
}

TEST(ConfigSizes, ParseSizeSaturatesInsteadOfOverflowing) {
  EXPECT_EQ(parse_size("17179869184GiB"), UINT64_MAX);  // 2^34 GiB = 2^64 bytes
  EXPECT_EQ(parse_size("17179869183GiB"), 17179869183ull << 30);
  EXPECT_EQ(parse_size("18446744073709551615B"), UINT64_MAX);
  EXPECT_EQ(parse_size("18446744073709551616B"), UINT64_MAX);
}

TEST(ConfigSizes, FormatSizeUsesTheLargestExactUnitAndRoundTrips) {
  EXPECT_EQ(format_size(1u << 30), "1GiB");
  EXPECT_EQ(format_size(16 * 1024), "16KiB");
  EXPECT_EQ(format_size(4000), "4KB");
  EXPECT_EQ(format_size(1000 * 1024), "1000KiB");
  EXPECT_EQ(format_size(100), "100B");
  EXPECT_EQ(format_size(0), "0B");
  for (std::uint64_t bytes : {1ull, 999ull, 1000ull, 1024ull, 1536ull, 10'000'000ull}) {
    EXPECT_EQ(parse_size(format_size(bytes)), bytes) << bytes;
  }
}

TEST(ConfigDurations, EveryUnitIsAccepted) {
  EXPECT_EQ(parse_ok("[api]\nrequest_timeout = \"500ms\"\n").api.request_timeout,
            milliseconds(500));
  EXPECT_EQ(parse_ok("[api]\nrequest_timeout = \"10s\"\n").api.request_timeout,
            milliseconds(10'000));
  EXPECT_EQ(parse_ok("[api]\nidle_timeout = \"5m\"\n").api.idle_timeout, milliseconds(300'000));
  EXPECT_EQ(parse_ok("[api]\nidle_timeout = \"1h\"\n").api.idle_timeout, milliseconds(3'600'000));
  EXPECT_EQ(parse_ok("[api]\nshutdown_grace = \"2 s\"\n").api.shutdown_grace, milliseconds(2'000));
}

TEST(ConfigDurations, ABareNumberIsRejectedBecauseItHasNoUnit) {
  EXPECT_EQ(parse_error("[api]\nrequest_timeout = 10\n"),
            "t.toml:2: 'api.request_timeout' must be a duration with a unit: ms, s, m or h, "
            "such as \"500ms\" or \"10s\" (got 10, which has no unit)");
  EXPECT_THAT(parse_error("[api]\nrequest_timeout = \"10\"\n"),
              HasSubstr("must be a duration with a unit"));
}

TEST(ConfigDurations, MalformedDurationsAreRejected) {
  for (const char* bad : {"10 sec", "1.5s", "s", "", "-1s", "10S", "1d"}) {
    EXPECT_THAT(parse_error(std::string("[api]\nidle_timeout = \"") + bad + "\"\n"),
                AllOf(StartsWith("t.toml:2: 'api.idle_timeout' must be a duration with a unit"),
                      HasSubstr(std::string("(got '") + bad + "')")))
        << bad;
  }
}

TEST(ConfigDurations, ZeroAndOverlongDurationsAreRejected) {
  EXPECT_EQ(parse_error("[api]\nrequest_timeout = \"0ms\"\n"),
            "t.toml:2: 'api.request_timeout' must be greater than 0 (got '0ms')");
  EXPECT_EQ(parse_error("[api]\nshutdown_grace = \"0s\"\n"),
            "t.toml:2: 'api.shutdown_grace' must be greater than 0 (got '0s')");
  EXPECT_EQ(parse_error("[api]\nidle_timeout = \"25h\"\n"),
            "t.toml:2: 'api.idle_timeout' must be at most 24h (got '25h')");
  EXPECT_EQ(parse_ok("[api]\nidle_timeout = \"24h\"\n").api.idle_timeout, std::chrono::hours(24));
  EXPECT_THAT(parse_error("[api]\nidle_timeout = \"99999999999999999999h\"\n"),
              HasSubstr("must be at most 24h"));
}

TEST(ConfigDurations, FormatDurationUsesTheLargestExactUnit) {
  EXPECT_EQ(format_duration(std::chrono::hours(24)), "24h");
  EXPECT_EQ(format_duration(milliseconds(90'000)), "90s");
  EXPECT_EQ(format_duration(milliseconds(120'000)), "2m");
  EXPECT_EQ(format_duration(milliseconds(1'500)), "1500ms");
  EXPECT_EQ(parse_duration(format_duration(milliseconds(61'000))), milliseconds(61'000));
}

TEST(ConfigToken, TokenEnvReadsTheNamedVariable) {
  ScopedEnv env("READ");
  env.set("from-the-environment");
  const Config config = parse_ok("[api]\ntoken_env = \"" + env.name() + "\"\n");
  EXPECT_EQ(config.api.token, "from-the-environment");
  EXPECT_EQ(config.api.token_source, "$" + env.name());
}

TEST(ConfigToken, TokenEnvNamingAnUnsetVariableIsAnErrorNamingIt) {
  ScopedEnv env("UNSET");
  EXPECT_EQ(parse_error("[api]\n\ntoken_env = \"" + env.name() + "\"\n"),
            "t.toml:3: 'api.token_env' names " + env.name() + ", which is not set");
}

TEST(ConfigToken, TokenEnvNamingAnEmptyVariableIsAnError) {
  ScopedEnv env("EMPTY");
  env.set("");
  EXPECT_EQ(parse_error("[api]\ntoken_env = \"" + env.name() + "\"\n"),
            "t.toml:2: 'api.token_env' names " + env.name() + ", which is empty");
}

TEST(ConfigToken, SettingBothTokenAndTokenEnvIsAnError) {
  ScopedEnv env("BOTH");
  env.set("whatever");
  EXPECT_EQ(parse_error("[api]\ntoken = \"abc\"\ntoken_env = \"" + env.name() + "\"\n"),
            "t.toml:3: set either 'api.token' or 'api.token_env', not both");
}

TEST(ConfigToken, EmptyTokenIsAnErrorRatherThanSilentlyDisablingAuth) {
  EXPECT_EQ(parse_error("[api]\ntoken = \"\"\n"),
            "t.toml:2: 'api.token' must not be empty (leave it out instead)");
}

TEST(ConfigToken, TokenWithSpacesIsRejectedWithoutEchoingTheSecret) {
  const std::string message = parse_error("[api]\ntoken = \"hunter2 hunter3\"\n");
  EXPECT_EQ(message, "t.toml:2: 'api.token' must be printable ASCII without spaces");
  EXPECT_THAT(message, Not(HasSubstr("hunter")));

  ScopedEnv env("SPACES");
  env.set("trailing-newline\n");
  EXPECT_THAT(parse_error("[api]\ntoken_env = \"" + env.name() + "\"\n"),
              AllOf(HasSubstr("printable ASCII"), Not(HasSubstr("trailing-newline"))));
}

TEST(ConfigAgent, OrchestratorKeysOverrideTheirDefaults) {
  const Config config = parse_ok(R"(
assistant_name = "Bob"
timezone = "Europe/Berlin"
[agent]
runtime = "none"
command = ["/usr/local/bin/my-agent", "--fast"]
timeout = "2m"
idle_timeout = "30s"
max_output_bytes = "1MiB"
max_concurrent = 3
network = true
trigger_aliases = ["@bobby", "bot"]
[model]
provider = "openai"
base_url = "http://127.0.0.1:11434/v1"
model = "llama3"
api_key = "k-123"
daily_token_budget = 50000
)");
  EXPECT_EQ(config.assistant_name, "Bob");
  EXPECT_EQ(config.timezone, "Europe/Berlin");
  EXPECT_EQ(config.agent.runtime, "none");
  EXPECT_EQ(config.agent.command, (std::vector<std::string>{"/usr/local/bin/my-agent", "--fast"}));
  EXPECT_EQ(config.agent.timeout, milliseconds(120'000));
  EXPECT_EQ(config.agent.idle_timeout, milliseconds(30'000));
  EXPECT_EQ(config.agent.max_output_bytes, 1024u * 1024u);
  EXPECT_EQ(config.agent.max_concurrent, 3u);
  EXPECT_TRUE(config.agent.network);
  EXPECT_EQ(config.agent.trigger_aliases, (std::vector<std::string>{"@bobby", "bot"}));
  EXPECT_EQ(config.model.provider, "openai");
  EXPECT_EQ(config.model.base_url, "http://127.0.0.1:11434/v1");
  EXPECT_EQ(config.model.model, "llama3");
  EXPECT_EQ(config.model.api_key, "k-123");
  EXPECT_EQ(config.model.api_key_source, "model.api_key");
  EXPECT_EQ(config.model.daily_token_budget, 50000);
}

TEST(ConfigAgent, DefaultsAreTheDocumentedOnes) {
  const Config config = parse_ok("");
  EXPECT_EQ(config.assistant_name, "Andy");
  EXPECT_EQ(config.timezone, "");
  EXPECT_EQ(config.agent.runtime, "auto");
  EXPECT_EQ(config.agent.command, (std::vector<std::string>{"switchboard", "agent"}));
  EXPECT_EQ(config.agent.max_concurrent, 5u);
  EXPECT_EQ(config.agent.max_output_bytes, 10u * 1024u * 1024u);
  EXPECT_FALSE(config.agent.network);
  EXPECT_EQ(config.model.provider, "anthropic");
  EXPECT_EQ(config.model.daily_token_budget, 0);
}

TEST(ConfigAgent, BadOrchestratorValuesNameKeyAndLine) {
  EXPECT_EQ(parse_error("[agent]\nruntime = \"lxc\""),
            "t.toml:2: 'agent.runtime' must be one of auto, bwrap, docker, podman, none (got "
            "'lxc')");
  EXPECT_THAT(parse_error("[agent]\ncommand = []"),
              StartsWith("t.toml:2: 'agent.command' must be a non-empty array"));
  EXPECT_THAT(parse_error("[agent]\ncommand = \"switchboard agent\""),
              StartsWith("t.toml:2: 'agent.command' must be a non-empty array"));
  EXPECT_THAT(parse_error("timezone = \"Mars/Olympus\""), StartsWith("t.toml:1: 'timezone': "));
  EXPECT_THAT(parse_error("assistant_name = \"two words\""),
              StartsWith("t.toml:1: 'assistant_name' must be 1-64 letters"));
  EXPECT_THAT(parse_error("[agent]\ntrigger_aliases = [\"@ok\", \"not ok\"]"),
              HasSubstr("'agent.trigger_aliases' entries must be"));
  EXPECT_THAT(parse_error("[model]\nbase_url = \"api.example.com\""),
              HasSubstr("must start with http:// or https://"));
  EXPECT_THAT(parse_error("[model]\ndaily_token_budget = -1"), HasSubstr("non-negative"));
}

TEST(ConfigAgent, ClientCommandsDoNotNeedTheModelKeyVariable) {
  ScopedEnv env("UNSET_MODEL_KEY");
  const std::string text = "[model]\napi_key_env = \"" + env.name() + "\"";
  EXPECT_THAT(parse_error(text), HasSubstr("which is not set"));
  auto client = parse_config(text, "t.toml", ConfigPurpose::client);
  ASSERT_TRUE(client.ok()) << client.error().message;
  EXPECT_EQ(client->model.api_key, "");
}

TEST(ConfigAgent, ModelKeyEnvReadsTheVariableAndNeverBoth) {
  ScopedEnv env("MODEL_KEY");
  env.set("sk-secret");
  const Config config = parse_ok("[model]\napi_key_env = \"" + env.name() + "\"");
  EXPECT_EQ(config.model.api_key, "sk-secret");
  EXPECT_EQ(config.model.api_key_source, "$" + env.name());
  EXPECT_EQ(parse_error("[model]\napi_key = \"a\"\napi_key_env = \"" + env.name() + "\""),
            "t.toml:3: set either 'model.api_key' or 'model.api_key_env', not both");
}

TEST(ConfigListen, IPv6AndPortOnlyFormsAreAccepted) {
  Config config = parse_ok("[api]\nlisten = \"[::1]:9001\"\n");
  EXPECT_EQ(config.api.host, "::1");
  EXPECT_EQ(config.api.port, 9001);

  config = parse_ok("[api]\nlisten = \":8200\"\n");
  EXPECT_EQ(config.api.host, "127.0.0.1");
  EXPECT_EQ(config.api.port, 8200);

  config = parse_ok("[api]\nlisten = \"LocalHost:80\"\n");
  EXPECT_EQ(config.api.host, "localhost");
  EXPECT_EQ(config.api.port, 80);
}

TEST(ConfigListen, MalformedListenIsAnErrorShowingTheValue) {
  for (const char* bad : {"localhost", "127.0.0.1:0", "127.0.0.1:65536", "::1:80", "[::1]80",
                          "[127.0.0.1]:80", "127.0.0.1:", "127.0.0.1:80x", "a b:80"}) {
    EXPECT_THAT(parse_error(std::string("[api]\nlisten = \"") + bad + "\"\n"),
                AllOf(StartsWith("t.toml:2: 'api.listen' must be \"host:port\""),
                      HasSubstr(std::string("(got '") + bad + "')")))
        << bad;
  }
}

TEST(ConfigListen, AHostNameOtherThanLocalhostIsRejectedBecauseTheServerDoesNotResolve) {
  EXPECT_EQ(parse_error("[api]\nlisten = \"example.com:80\"\n"),
            "t.toml:2: 'api.listen' must name an IP address or localhost, not a host name "
            "(got 'example.com:80')");
}

TEST(ConfigHostPort, ParsesEachForm) {
  auto parsed = parse_host_port("10.1.2.3:443");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->host, "10.1.2.3");
  EXPECT_EQ(parsed->port, 443);

  parsed = parse_host_port("[2001:db8::7]:65535");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->host, "2001:db8::7");
  EXPECT_EQ(parsed->port, 65535);

  parsed = parse_host_port(":1");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->host, "127.0.0.1");
  EXPECT_EQ(parsed->port, 1);

  parsed = parse_host_port("mail.example.org:25");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->host, "mail.example.org");
}

TEST(ConfigHostPort, RejectsMalformedText) {
  for (const char* bad :
       {"", ":", "8114", "host:0", "host:65536", "host:99999", "host:123456", "host:-1", "host:+80",
        "::1:80", "[::1]", "[::1]:", "[]:80", "[::1:80", "[nope]:80", "ho st:80", "host:80 "}) {
    EXPECT_FALSE(parse_host_port(bad)) << bad;
  }
}

TEST(ConfigLoopback, RecognisesLoopbackHosts) {
  for (const char* host : {"localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "127.255.255.255",
                           "::1", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(is_loopback_host(host)) << host;
  }
}

TEST(ConfigLoopback, EverythingElseIsNotLoopback) {
  for (const char* host :
       {"0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "126.255.255.255", "192.168.1.1", "::2",
        "::ffff:10.0.0.1", "example.com", "localhost.example.com", "", "[::1]"}) {
    EXPECT_FALSE(is_loopback_host(host)) << host;
  }
}

TEST(ConfigLoad, MissingFileNamesThePathAndTheReason) {
  const auto result = load_config("/nonexistent/switchboard-config-test.toml");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().message,
            "cannot read config file /nonexistent/switchboard-config-test.toml: No such file or "
            "directory");
}

TEST(ConfigLoad, ADirectoryIsNotAConfigFile) {
  const auto result = load_config(std::filesystem::temp_directory_path());
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.error().message, StartsWith("cannot read config file "));
}

TEST(ConfigLoad, ReadsTheFileAndNamesItInErrors) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("switchboard-config-test-" + std::to_string(::getpid()) + ".toml");
  {
    std::ofstream out(path);
    out << "[api]\nlisten = \"[::1]:8300\"\n";
  }
  auto result = load_config(path);
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->api.host, "::1");
  EXPECT_EQ(result->api.port, 8300);

  {
    std::ofstream out(path);
    out << "[api]\nlisten = \":1\"\nlissen = \":2\"\n";
  }
  result = load_config(path);
  std::filesystem::remove(path);
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.error().message, StartsWith(path.string() + ":3: unknown key 'api.lissen'"));
}

}  // namespace
}  // namespace sb

namespace sb {
namespace {

TEST(ConfigEmail, AnAccountWithItsReceiverAndSubmissionServerIsRead) {
  ScopedEnv password("SMTP");
  password.set("s3cret");
  const Config c = parse_ok(
      "[email]\nreply_limit = 3\nmax_attachments = 2\n"
      "[email.receiver]\nenabled = true\nlisten = \"0.0.0.0:2525\"\nhostname = \"mx.example.org\"\n"
      "max_message_bytes = \"1MiB\"\n"
      "[[email.accounts]]\naddress = \"Andy@Example.org\"\nallow_from = [\"@example.org\"]\n"
      "group = \"mail\"\n"
      "[email.accounts.smtp]\nhost = \"smtp.example.org\"\nsecurity = \"tls\"\n"
      "username = \"andy\"\npassword_env = \"" +
      password.name() + "\"\n");
  EXPECT_TRUE(c.email.receiver.enabled);
  EXPECT_EQ(c.email.receiver.host, "0.0.0.0");
  EXPECT_EQ(c.email.receiver.port, 2525);
  EXPECT_EQ(c.email.receiver.max_message_bytes, 1024u * 1024u);
  EXPECT_EQ(c.email.reply_limit, 3u);
  ASSERT_EQ(c.email.accounts.size(), 1u);
  const auto& account = c.email.accounts[0];
  EXPECT_EQ(account.address, "andy@example.org") << "addresses are compared in lower case";
  EXPECT_EQ(account.group, "mail");
  EXPECT_EQ(account.smtp.port, 465) << "implicit TLS defaults to port 465";
  EXPECT_EQ(account.smtp.password, "s3cret");
}

TEST(ConfigEmail, AnAccountMustSayWhoMayCommandTheAgent) {
  EXPECT_THAT(parse_error("[[email.accounts]]\naddress = \"andy@example.org\"\n"),
              AllOf(HasSubstr("t.toml:1:"), HasSubstr("allow_from")));
}

TEST(ConfigEmail, BadAddressesFoldersAndHalfATlsPairAreErrors) {
  EXPECT_THAT(parse_error("[[email.accounts]]\naddress = \"andy\"\nallow_from = [\"*\"]\n"),
              HasSubstr("must be an email address"));
  EXPECT_THAT(parse_error("[[email.accounts]]\naddress = \"a@b.c\"\nallow_from = [\"*\"]\n"
                          "group = \"../x\"\n"),
              HasSubstr("group folder name"));
  EXPECT_THAT(parse_error("[email.receiver]\ntls_cert = \"/x.pem\"\n"),
              HasSubstr("both tls_cert and tls_key"));
  EXPECT_THAT(parse_error("[[email.accounts]]\naddress = \"a@b.c\"\nallow_from = [\"*\"]\n"
                          "[email.accounts.smtp]\nsecurity = \"ssl\"\n"),
              HasSubstr("must be one of"));
}

TEST(ConfigEmail, AnImapMailboxAndAJmapAccountAreRead) {
  ScopedEnv imap_password("IMAP");
  imap_password.set("imap pass");
  ScopedEnv token("JMAP");
  token.set("fmu1-token");
  const Config c = parse_ok(
      "[[email.accounts]]\naddress = \"andy@example.org\"\nallow_from = [\"*\"]\n"
      "receive = \"imap\"\n"
      "[email.accounts.imap]\nhost = \"imap.example.org\"\nsecurity = \"starttls\"\n"
      "password_env = \"" +
      imap_password.name() +
      "\"\nfolder = \"Assistant\"\npoll_interval = \"30s\"\nidle_renew = \"20m\"\n"
      "auth = \"plain\"\n"
      "[[email.accounts]]\naddress = \"bob@fastmail.com\"\nallow_from = [\"@example.org\"]\n"
      "receive = \"jmap\"\nsend = \"jmap\"\n"
      "[email.accounts.jmap]\nsession_url = \"https://api.fastmail.com/jmap/session\"\n"
      "token_env = \"" +
      token.name() + "\"\nafter_send = \"destroy\"\npush = false\n");
  ASSERT_EQ(c.email.accounts.size(), 2u);
  const auto& imap = c.email.accounts[0].imap;
  EXPECT_EQ(c.email.accounts[0].receive, "imap");
  EXPECT_EQ(imap.host, "imap.example.org");
  EXPECT_EQ(imap.port, 143) << "STARTTLS defaults to port 143";
  EXPECT_EQ(imap.username, "andy@example.org") << "the user name defaults to the address";
  EXPECT_EQ(imap.password, "imap pass") << "mail passwords may contain spaces";
  EXPECT_EQ(imap.password_source, "$" + imap_password.name());
  EXPECT_EQ(imap.folder, "Assistant");
  EXPECT_EQ(imap.auth, "plain");
  EXPECT_EQ(imap.poll_interval, milliseconds(30'000));
  EXPECT_EQ(imap.idle_renew, milliseconds(20 * 60'000));
  const auto& jmap = c.email.accounts[1].jmap;
  EXPECT_EQ(c.email.accounts[1].send, "jmap");
  EXPECT_EQ(jmap.session_url, "https://api.fastmail.com/jmap/session");
  EXPECT_EQ(jmap.token, "fmu1-token");
  EXPECT_EQ(jmap.after_send, "destroy");
  EXPECT_FALSE(jmap.push);
  EXPECT_EQ(parse_ok("[[email.accounts]]\naddress = \"a@b.c\"\nallow_from = [\"*\"]\n"
                     "receive = \"imap\"\n[email.accounts.imap]\nhost = \"h\"\n"
                     "password = \"p\"\n")
                .email.accounts[0]
                .imap.port,
            993)
      << "implicit TLS on 993 is the default";
}

TEST(ConfigEmail, MailboxAccountsNeedTheirServerAndSecret) {
  const std::string account = "[[email.accounts]]\naddress = \"a@b.c\"\nallow_from = [\"*\"]\n";
  EXPECT_THAT(parse_error(account + "receive = \"imap\"\n"),
              AllOf(HasSubstr("receives by imap"), HasSubstr("'host'")));
  EXPECT_THAT(parse_error(account + "receive = \"imap\"\n[email.accounts.imap]\nhost = \"h\"\n"),
              HasSubstr("password_env"));
  EXPECT_THAT(parse_error(account + "send = \"jmap\"\n"), HasSubstr("session_url"));
  EXPECT_THAT(parse_error(account + "receive = \"jmap\"\n[email.accounts.jmap]\n"
                                    "session_url = \"https://x.example\"\n"),
              HasSubstr("token_env"));
  EXPECT_THAT(parse_error(account + "[email.accounts.jmap]\nsession_url = \"ftp://x\"\n"),
              HasSubstr("http(s) URL"));
  EXPECT_THAT(parse_error(account + "[email.accounts.imap]\nidle_renew = \"30m\"\n"),
              HasSubstr("at most 29m"));
  EXPECT_THAT(parse_error(account + "receive = \"pop3\"\n"), HasSubstr("must be one of"));
  ScopedEnv unset("UNSET");
  const std::string error = parse_error(account +
                                        "receive = \"jmap\"\n[email.accounts.jmap]\n"
                                        "session_url = \"https://x.example\"\n"
                                        "token_env = \"" +
                                        unset.name() + "\"\n");
  EXPECT_THAT(error, HasSubstr("which is not set"));
}

TEST(ConfigAgent, TheBuiltInAgentsLimitsAreRead) {
  const Config c = parse_ok(
      "[agent]\nmax_tool_rounds = 7\nmax_output_tokens = 1000\ntool_timeout = \"30s\"\n"
      "model_timeout = \"1m\"\ncontext_window = 32000\n");
  EXPECT_EQ(c.agent.max_tool_rounds, 7u);
  EXPECT_EQ(c.agent.max_output_tokens, 1000u);
  EXPECT_EQ(c.agent.tool_timeout, milliseconds(30'000));
  EXPECT_EQ(c.agent.model_timeout, milliseconds(60'000));
  EXPECT_EQ(c.agent.context_window, 32000u);
  EXPECT_THAT(parse_error("[agent]\nmax_tool_rounds = 0\n"), HasSubstr("positive integer"));
}

}  // namespace
}  // namespace sb

namespace sb {
namespace {

TEST(ConfigSandbox, LimitsHaveDefaultsTakeUnitsAndUnlimited) {
  const Config defaults = parse_ok("");
  EXPECT_EQ(defaults.agent.user, "nobody");
  EXPECT_EQ(defaults.agent.max_processes, 1024u);
  EXPECT_EQ(defaults.agent.max_memory, 2ull << 30);
  EXPECT_EQ(defaults.agent.max_cpu_time, std::chrono::hours(1));
  EXPECT_EQ(defaults.agent.max_file_size, 1ull << 30);
  EXPECT_EQ(defaults.agent.max_open_files, 1024u);
  EXPECT_EQ(defaults.agent.max_disk, 5ull << 30);
  const Config set = parse_ok(
      "[agent]\nuser = \"switchboard-agent\"\nmax_processes = 64\nmax_memory = \"256MiB\"\n"
      "max_cpu_time = \"90s\"\nmax_file_size = \"16MiB\"\nmax_open_files = 256\n"
      "max_disk = \"1GiB\"\n");
  EXPECT_EQ(set.agent.user, "switchboard-agent");
  EXPECT_EQ(set.agent.max_processes, 64u);
  EXPECT_EQ(set.agent.max_memory, 256u << 20);
  EXPECT_EQ(set.agent.max_cpu_time, std::chrono::seconds(90));
  EXPECT_EQ(set.agent.max_file_size, 16u << 20);
  EXPECT_EQ(set.agent.max_open_files, 256u);
  EXPECT_EQ(set.agent.max_disk, 1ull << 30);
  const Config unlimited = parse_ok(
      "[agent]\nmax_processes = \"unlimited\"\nmax_memory = \"unlimited\"\n"
      "max_cpu_time = \"unlimited\"\nmax_file_size = \"unlimited\"\n"
      "max_open_files = \"unlimited\"\nmax_disk = \"unlimited\"\n");
  EXPECT_EQ(unlimited.agent.max_processes, 0u);
  EXPECT_EQ(unlimited.agent.max_memory, 0u);
  EXPECT_EQ(unlimited.agent.max_cpu_time.count(), 0);
  EXPECT_EQ(unlimited.agent.max_disk, 0u);
}

TEST(ConfigSandbox, RefusesRootAsTheAgentUserAndLimitsWithoutUnits) {
  EXPECT_THAT(parse_error("[agent]\nuser = \"root\"\n"), HasSubstr("other than root"));
  EXPECT_THAT(parse_error("[agent]\nuser = \"0:0\"\n"), HasSubstr("other than root"));
  EXPECT_THAT(parse_error("[agent]\nmax_cpu_time = 60\n"), HasSubstr("no unit"));
  EXPECT_THAT(parse_error("[agent]\nmax_memory = \"lots\"\n"), HasSubstr("max_memory"));
  EXPECT_THAT(parse_error("[agent]\nmax_processes = 0\n"), HasSubstr("max_processes"));
}

}  // namespace
}  // namespace sb
