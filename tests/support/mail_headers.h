#pragma once
// Reading a header out of RFC 5322 bytes in tests, independent of the code under test.

#include <cctype>
#include <string>

namespace sb::test {

// The value of header `name` in RFC 5322 `data` (first occurrence, unfolded), or "".
inline std::string header(const std::string& data, const std::string& name) {
  std::string lower_data = data.substr(0, data.find("\r\n\r\n"));
  for (char& c : lower_data) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string key = "\n" + name + ":";
  for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto at = ("\n" + lower_data).find(key);
  if (at == std::string::npos) return "";
  std::size_t start = at + key.size() - 1;
  std::string value;
  for (std::size_t i = start; i < data.size(); ++i) {
    if (data.compare(i, 2, "\r\n") == 0) {
      if (i + 2 < data.size() && (data[i + 2] == ' ' || data[i + 2] == '\t')) {
        i += 1;
        continue;
      }
      break;
    }
    value += data[i];
  }
  const auto first = value.find_first_not_of(" \t");
  return first == std::string::npos ? "" : value.substr(first);
}

}  // namespace sb::test
