#include "agent/result_writer.h"

#include <boost/json.hpp>

namespace sb::agent {

void write_result(std::ostream& out, const AgentOutput& output) {
  boost::json::object o{{"status", output.success ? "success" : "error"}};
  o["result"] = output.result ? boost::json::value(*output.result) : boost::json::value(nullptr);
  if (!output.session_id.empty()) o["newSessionId"] = output.session_id;
  if (output.error) o["error"] = *output.error;
  // serialize() escapes control characters, so the JSON is one line whatever the text holds.
  out << kOutputStart << '\n' << boost::json::serialize(o) << '\n' << kOutputEnd << '\n';
  out.flush();
}

}  // namespace sb::agent
