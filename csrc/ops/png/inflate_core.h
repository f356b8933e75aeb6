// A streaming zlib/deflate decoder (RFC 1950 + RFC 1951) for PNG image data, torch-free.
//
// The decoded bytes are handed out in pieces (one PNG scanline at a time) from a bounded
// sliding window (the last 32 KiB of output that matches may refer to, plus room for the
// pieces), so a consumer such as the panoptic pair counter never stores the whole inflated
// image: memory stays flat (a few hundred KiB per image) and the bytes are still in cache when
// they are used. Huffman codes are decoded through two-level lookup tables (one 64-bit bit
// buffer refill per symbol); matches are copied 32/16/8 bytes at a time, distance 1 as memset
// and distances 2..7 (e.g. one RGB pixel) as a repeated 8-byte pattern. The adler32 trailer is
// checked; a run of zero bytes is added to it in O(1) (most rows of a PNG segment map are
// filter Up with all-zero deltas).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace knet {
namespace png {

class Inflater {
 public:
  // `zlib`: a zlib stream of `n` bytes (kept alive by the caller). `max_read`: the largest n
  // that read() will be asked for.
  Inflater(const uint8_t* zlib, size_t n, size_t max_read);

  // The next `n` (<= max_read) decoded bytes, valid until the next call; nullptr when the
  // stream is corrupt or ends first (error() says why). `*zero_tail` is set when bytes
  // 1..n-1 are all zero.
  const uint8_t* read(size_t n, bool* zero_tail);

  // Whatever the next decoding step gives (at least one byte), *n bytes valid until the next
  // call; nullptr at the end of the data (then call finish()) or on corrupt data.
  const uint8_t* read_some(size_t* n);

  // Decodes the rest of the stream (discarding the bytes) and checks the adler32 trailer;
  // false (error() set) on corrupt or truncated data.
  bool finish();

  const char* error() const { return err_; }
  uint64_t total_out() const { return base_ + out_; }

 private:
  enum class Block { kHeader, kStored, kHuffman, kDone };

  bool fail(const char* msg);
  void refill();
  uint32_t take(unsigned nbits);
  bool read_zlib_header();
  bool start_block();
  bool read_dynamic_tables();
  bool decode(size_t want);
  bool decode_stored(size_t stop);
  bool decode_huffman(size_t stop);
  void slide();
  bool check_truncation();
  void adler_add(const uint8_t* p, size_t n, bool zero_tail);

  const uint8_t* in_;
  size_t n_;
  size_t pos_ = 0;       // next input byte to load into the bit buffer (may run past n_ with zeros)
  uint64_t bitbuf_ = 0;  // bits not yet consumed, least significant first
  unsigned bitcnt_ = 0;

  std::vector<uint8_t> buf_;  // sliding window + output not yet read (+ copy slack)
  size_t cap_;                // usable size of buf_ (a symbol starts only below cap_ - 258)
  size_t out_ = 0;            // write position in buf_
  size_t rd_ = 0;             // read position in buf_
  uint64_t base_ = 0;         // total output before buf_[0]

  Block block_ = Block::kHeader;
  bool final_ = false;
  bool header_done_ = false;
  size_t stored_left_ = 0;
  const uint32_t* lit_ = nullptr;  // current tables (own or the fixed ones)
  const uint32_t* dist_ = nullptr;
  std::vector<uint32_t> lit_own_, dist_own_;

  uint32_t adler_a_ = 1, adler_b_ = 0;
  const char* err_ = nullptr;
};

// Whole-stream decompression (tests and small images): the inflated bytes of a zlib stream,
// or false with *err set.
bool zlib_decompress(const uint8_t* in, size_t n, std::vector<uint8_t>& out, const char** err);

}  // namespace png
}  // namespace knet
