#pragma once
// Bearer-token check for the API.

#include <string_view>

namespace sb::api {

// True if `authorization` is "Bearer <token>" (scheme case-insensitive) and the token equals
// `expected`. The comparison takes the same time wherever the tokens differ and whatever
// their lengths (both are hashed, the digests compared with CRYPTO_memcmp).
bool bearer_token_matches(std::string_view authorization, std::string_view expected);

}  // namespace sb::api
