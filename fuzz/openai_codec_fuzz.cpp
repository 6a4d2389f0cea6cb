// A response body of the OpenAI chat completions API (and the compatible servers), read as the
// built-in agent reads it (agent/openai_codec.h): decode() and describe_error(), then the decoded
// answer encoded again as the next request would carry it (codec_check.h).
#include <cstddef>
#include <cstdint>

#include "agent/openai_codec.h"
#include "codec_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace codec = sb::agent::openai;
  sb::fuzz::check_codec(sb::fuzz::as_text(data, size), codec::decode, codec::encode,
                        codec::describe_error);
  return 0;
}
