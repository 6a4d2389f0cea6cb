#include "common/ids.h"

#include <random>

namespace sb {

std::string random_id(std::string_view prefix) {
  static std::mt19937_64 random{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(prefix);
  id += '-';
  std::uint64_t bits = random();
  for (int i = 0; i < 12; ++i, bits >>= 4) id += kHex[bits & 15];
  return id;
}

}  // namespace sb
