#pragma once
// Shared by the libFuzzer harnesses (docs/fuzzing.md): splitting an input into the pieces a
// network read would deliver, a synchronous in-memory stream for Boost.Beast's parsers, and a
// check that stops the fuzzer on a broken property.
//
// The inputs stay plain protocol text (a corpus file is what a peer would send): the piece
// sizes are derived from a hash of the input, so the same input is always split the same way
// while different inputs are split differently.
#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace sb::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Stops the run (libFuzzer records the input as a crash) when a property does not hold.
inline void require(bool holds, const char* what) {
  if (holds) return;
  std::fprintf(stderr, "fuzz property broken: %s\n", what);
  std::abort();
}

// Piece sizes from 1 to `max_piece` bytes, from a generator seeded with a hash of the input.
class Pieces {
 public:
  explicit Pieces(std::string_view input, std::size_t max_piece = 64) : max_piece_(max_piece) {
    state_ = 0xcbf29ce484222325ull;  // FNV-1a
    for (unsigned char c : input) state_ = (state_ ^ c) * 0x100000001b3ull;
    state_ |= 1;
  }
  std::size_t next() {
    state_ ^= state_ << 13;  // xorshift64
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    // Mostly short pieces (splits inside tokens), sometimes long ones.
    const std::size_t limit = (state_ >> 60) == 0 ? max_piece_ * 64 : max_piece_;
    return 1 + static_cast<std::size_t>((state_ >> 8) % limit);
  }

  // `input` cut into consecutive pieces.
  static std::vector<std::string_view> split(std::string_view input, std::size_t max_piece = 64) {
    Pieces sizes(input, max_piece);
    std::vector<std::string_view> out;
    while (!input.empty()) {
      const std::size_t n = std::min(sizes.next(), input.size());
      out.push_back(input.substr(0, n));
      input.remove_prefix(n);
    }
    return out;
  }

 private:
  std::size_t max_piece_;
  std::uint64_t state_;
};

// A SyncReadStream (Boost.Asio's concept, which boost::beast::http::read takes) over fixed
// bytes, delivered in pieces as a socket would, then end of file.
class PieceStream {
 public:
  explicit PieceStream(std::string_view bytes) : bytes_(bytes), sizes_(bytes, 4096) {}

  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers, boost::system::error_code& ec) {
    ec = {};
    if (bytes_.empty()) {
      ec = boost::asio::error::eof;
      return 0;
    }
    std::size_t n = std::min({sizes_.next(), bytes_.size(), boost::asio::buffer_size(buffers)});
    n = boost::asio::buffer_copy(buffers, boost::asio::buffer(bytes_.data(), n));
    bytes_.remove_prefix(n);
    return n;
  }

  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers) {
    boost::system::error_code ec;
    const std::size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  std::string_view bytes_;
  Pieces sizes_;
};

}  // namespace sb::fuzz
