// Streaming zlib/deflate decoder (see inflate_core.h).
#include "ops/png/inflate_core.h"

#include <algorithm>
#include <cstring>

#include "ops/png/adler32_core.h"

namespace knet {
namespace png {

namespace {

constexpr size_t kWindow = 32768;
constexpr size_t kMaxMatch = 258;
constexpr size_t kSlack = 64;          // match copies may write up to 31 bytes past their end
constexpr size_t kRoom = 192 * 1024;   // output decoded between two window slides
constexpr unsigned kLitBits = 10, kDistBits = 8, kClBits = 7;
constexpr uint32_t kSub = 0x80000000u;  // table entry: a pointer to a subtable

const uint16_t kLenBase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                               31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
const uint8_t kLenExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
const uint16_t kDistBase[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
                                193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
const uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
const uint8_t kClOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

// Canonical Huffman code lengths -> lookup table: 2^pbits primary entries indexed by the next
// pbits input bits, sym | len << 16 (len = the whole code length; 0 = no such code); codes
// longer than pbits go through kSub | subbits << 16 | offset entries to 2^subbits-entry
// subtables. False on an over-subscribed set of lengths (an incomplete one is allowed; its
// missing codes decode as errors).
bool build_table(const uint8_t* lens, unsigned n, unsigned pbits, std::vector<uint32_t>& tab) {
  unsigned count[16] = {0};
  for (unsigned i = 0; i < n; ++i) ++count[lens[i]];
  count[0] = 0;
  int left = 1;
  unsigned maxlen = 0, nlong = 0;
  for (unsigned len = 1; len < 16; ++len) {
    left = (left << 1) - static_cast<int>(count[len]);
    if (left < 0) return false;
    if (count[len]) maxlen = len;
    if (len > pbits) nlong += count[len];
  }
  const unsigned subbits = maxlen > pbits ? maxlen - pbits : 0;
  unsigned next[16] = {0};
  for (unsigned len = 1, code = 0; len < 16; ++len) {
    code = (code + count[len - 1]) << 1;
    next[len] = code;
  }
  const size_t primary = size_t{1} << pbits;
  tab.assign(primary + static_cast<size_t>(nlong) * (size_t{1} << subbits), 0);
  size_t next_sub = primary;
  for (unsigned sym = 0; sym < n; ++sym) {
    const unsigned len = lens[sym];
    if (!len) continue;
    const unsigned code = next[len]++;
    unsigned rev = 0;
    for (unsigned b = 0; b < len; ++b) rev |= ((code >> b) & 1u) << (len - 1 - b);
    const uint32_t leaf = sym | (len << 16);
    if (len <= pbits) {
      for (size_t i = rev; i < primary; i += size_t{1} << len) tab[i] = leaf;
      continue;
    }
    const size_t p = rev & (primary - 1);
    if (!(tab[p] & kSub)) {
      tab[p] = kSub | (subbits << 16) | static_cast<uint32_t>(next_sub);
      next_sub += size_t{1} << subbits;
    }
    const size_t off = tab[p] & 0xFFFF;
    for (size_t i = rev >> pbits; i < (size_t{1} << subbits); i += size_t{1} << (len - pbits)) tab[off + i] = leaf;
  }
  return true;
}

struct FixedTables {
  std::vector<uint32_t> lit, dist;
  FixedTables() {
    uint8_t lens[288];
    std::fill(lens, lens + 144, 8);
    std::fill(lens + 144, lens + 256, 9);
    std::fill(lens + 256, lens + 280, 7);
    std::fill(lens + 280, lens + 288, 8);
    build_table(lens, 288, kLitBits, lit);
    uint8_t d[30];
    std::fill(d, d + 30, 5);
    build_table(d, 30, kDistBits, dist);
  }
};

const FixedTables& fixed_tables() {
  static const FixedTables tables;  // thread-safe initialisation
  return tables;
}

// copies `len` bytes from `dist` bytes back (dist <= bytes before dst); may write up to 31
// bytes past dst + len
inline void copy_match(uint8_t* dst, size_t dist, size_t len) {
  const uint8_t* src = dst - dist;
  uint8_t* const end = dst + len;
  if (dist >= 32) {
    do {
      std::memcpy(dst, src, 32);
      dst += 32;
      src += 32;
    } while (dst < end);
  } else if (dist >= 16) {
    do {
      std::memcpy(dst, src, 16);
      dst += 16;
      src += 16;
    } while (dst < end);
  } else if (dist >= 8) {
    do {
      std::memcpy(dst, src, 8);
      dst += 8;
      src += 8;
    } while (dst < end);
  } else if (dist == 1) {
    std::memset(dst, src[0], len);
  } else {
    // the pattern of `dist` bytes repeated over 8 bytes, stored every `period` bytes (the
    // largest multiple of dist <= 8, so that consecutive stores agree where they overlap)
    uint8_t pat[8];
    for (size_t i = 0; i < 8; ++i) pat[i] = src[i % dist];
    const size_t period = dist * (8 / dist);
    do {
      std::memcpy(dst, pat, 8);
      dst += period;
    } while (dst < end);
  }
}

}  // namespace

Inflater::Inflater(const uint8_t* zlib, size_t n, size_t max_read)
    : in_(zlib), n_(n), cap_(kWindow + max_read + kMaxMatch + kRoom) {
  buf_.resize(cap_ + kSlack);
}

bool Inflater::fail(const char* msg) {
  if (!err_) err_ = msg;
  return false;
}

// at least 56 valid bits in bitbuf_ afterwards; past the end of the input, zeros are loaded
// (check_truncation notices when they are consumed)
inline void Inflater::refill() {
  if (pos_ + 8 <= n_) {
    uint64_t w;
    std::memcpy(&w, in_ + pos_, 8);  // little-endian
    bitbuf_ |= w << bitcnt_;
    pos_ += (63 - bitcnt_) >> 3;
    bitcnt_ |= 56;
    return;
  }
  while (bitcnt_ <= 56) {
    const uint64_t byte = pos_ < n_ ? in_[pos_] : 0;
    bitbuf_ |= byte << bitcnt_;
    ++pos_;
    bitcnt_ += 8;
  }
}

inline uint32_t Inflater::take(unsigned nbits) {
  const uint32_t v = static_cast<uint32_t>(bitbuf_ & ((uint64_t{1} << nbits) - 1));
  bitbuf_ >>= nbits;
  bitcnt_ -= nbits;
  return v;
}

bool Inflater::check_truncation() {
  if (pos_ * 8 - bitcnt_ > n_ * 8) return fail("truncated image data (the zlib stream ends early)");
  return true;
}

bool Inflater::read_zlib_header() {
  if (n_ < 2) return fail("truncated image data (no zlib header)");
  const unsigned cmf = in_[0], flg = in_[1];
  if ((cmf & 15) != 8 || (cmf >> 4) > 7 || ((cmf << 8) | flg) % 31 != 0) return fail("invalid zlib header");
  if (flg & 32) return fail("zlib stream with a preset dictionary");
  pos_ = 2;
  header_done_ = true;
  return true;
}

bool Inflater::start_block() {
  refill();
  final_ = take(1) != 0;
  const uint32_t type = take(2);
  if (type == 0) {
    take(bitcnt_ & 7);  // to a byte boundary, then hand the buffered whole bytes back
    pos_ -= bitcnt_ >> 3;
    bitbuf_ = 0;
    bitcnt_ = 0;
    if (pos_ + 4 > n_) return fail("truncated image data (stored block header)");
    const uint32_t len = in_[pos_] | (in_[pos_ + 1] << 8), nlen = in_[pos_ + 2] | (in_[pos_ + 3] << 8);
    if (len != (~nlen & 0xFFFF)) return fail("invalid stored block lengths");
    pos_ += 4;
    stored_left_ = len;
    block_ = Block::kStored;
    if (len == 0) block_ = final_ ? Block::kDone : Block::kHeader;
    return true;
  }
  if (type == 1) {
    lit_ = fixed_tables().lit.data();
    dist_ = fixed_tables().dist.data();
    block_ = Block::kHuffman;
    return true;
  }
  if (type == 2) {
    if (!read_dynamic_tables()) return false;
    block_ = Block::kHuffman;
    return true;
  }
  return fail("invalid block type");
}

bool Inflater::read_dynamic_tables() {
  refill();
  const unsigned hlit = take(5) + 257, hdist = take(5) + 1, hclen = take(4) + 4;
  if (hlit > 286 || hdist > 30) return fail("too many length or distance symbols");
  uint8_t cl[19] = {0};
  for (unsigned i = 0; i < hclen; ++i) {
    refill();
    cl[kClOrder[i]] = static_cast<uint8_t>(take(3));
  }
  std::vector<uint32_t> cltab;
  if (!build_table(cl, 19, kClBits, cltab)) return fail("invalid code lengths set");
  uint8_t lens[286 + 30];
  unsigned i = 0;
  while (i < hlit + hdist) {
    refill();
    const uint32_t e = cltab[bitbuf_ & ((1u << kClBits) - 1)];
    const unsigned len = (e >> 16) & 0xFF;
    if (!len) return fail("invalid code lengths set");
    take(len);
    const unsigned sym = e & 0xFFFF;
    if (sym < 16) {
      lens[i++] = static_cast<uint8_t>(sym);
      continue;
    }
    unsigned rep;
    uint8_t val = 0;
    if (sym == 16) {
      if (i == 0) return fail("invalid bit length repeat");
      val = lens[i - 1];
      rep = 3 + take(2);
    } else if (sym == 17) {
      rep = 3 + take(3);
    } else {
      rep = 11 + take(7);
    }
    if (i + rep > hlit + hdist) return fail("invalid bit length repeat");
    std::memset(lens + i, val, rep);
    i += rep;
  }
  if (lens[256] == 0) return fail("invalid code -- missing end-of-block");
  if (!build_table(lens, hlit, kLitBits, lit_own_)) return fail("invalid literal/lengths set");
  if (!build_table(lens + hlit, hdist, kDistBits, dist_own_)) return fail("invalid distances set");
  lit_ = lit_own_.data();
  dist_ = dist_own_.data();
  return true;
}

bool Inflater::decode_stored(size_t stop) {
  const size_t k = std::min(stored_left_, stop - out_);
  if (pos_ + k > n_) return fail("truncated image data (stored block)");
  std::memcpy(buf_.data() + out_, in_ + pos_, k);
  pos_ += k;
  out_ += k;
  stored_left_ -= k;
  if (stored_left_ == 0) block_ = final_ ? Block::kDone : Block::kHeader;
  return true;
}

bool Inflater::decode_huffman(size_t stop) {
  uint8_t* const buf = buf_.data();
  const uint32_t* const lit = lit_;
  const uint32_t* const dist = dist_;
  size_t out = out_;
  bool ok = true;
  while (out < stop) {
    refill();
    uint32_t e = lit[bitbuf_ & ((1u << kLitBits) - 1)];
    if (e & kSub) e = lit[(e & 0xFFFF) + ((bitbuf_ >> kLitBits) & ((1u << ((e >> 16) & 0xFF)) - 1))];
    const unsigned len = (e >> 16) & 0xFF;
    if (!len) {
      ok = fail("invalid literal/length code");
      break;
    }
    take(len);
    const unsigned sym = e & 0xFFFF;
    if (sym < 256) {
      buf[out++] = static_cast<uint8_t>(sym);
      continue;
    }
    if (sym == 256) {
      block_ = final_ ? Block::kDone : Block::kHeader;
      break;
    }
    if (sym > 285) {
      ok = fail("invalid literal/length code");
      break;
    }
    const size_t mlen = kLenBase[sym - 257] + take(kLenExtra[sym - 257]);
    uint32_t d = dist[bitbuf_ & ((1u << kDistBits) - 1)];
    if (d & kSub) d = dist[(d & 0xFFFF) + ((bitbuf_ >> kDistBits) & ((1u << ((d >> 16) & 0xFF)) - 1))];
    const unsigned dlen = (d >> 16) & 0xFF;
    const unsigned dsym = d & 0xFFFF;
    if (!dlen || dsym >= 30) {
      ok = fail("invalid distance code");
      break;
    }
    take(dlen);
    const size_t mdist = kDistBase[dsym] + take(kDistExtra[dsym]);
    if (mdist > out) {
      ok = fail("invalid distance too far back");
      break;
    }
    copy_match(buf + out, mdist, mlen);
    out += mlen;
  }
  out_ = out;
  return ok;
}

void Inflater::slide() {
  const size_t keep_from = out_ > kWindow ? out_ - kWindow : 0;
  const size_t start = std::min(rd_, keep_from);
  if (start == 0) return;
  std::memmove(buf_.data(), buf_.data() + start, out_ - start);
  out_ -= start;
  rd_ -= start;
  base_ += start;
}

// one step: a block header, or block content until `want` bytes are unread (or the buffer is
// full: want <= max_read always fits after a slide)
bool Inflater::decode(size_t want) {
  if (!header_done_ && !read_zlib_header()) return false;
  if (out_ + kMaxMatch >= cap_) slide();
  const size_t stop = std::min(rd_ + std::min(want, cap_), cap_ - kMaxMatch);
  bool ok;
  switch (block_) {
    case Block::kHeader:
      ok = start_block();
      break;
    case Block::kStored:
      ok = decode_stored(stop);
      break;
    case Block::kHuffman:
      ok = decode_huffman(stop);
      break;
    default:
      return fail("image data ends early (the zlib stream has fewer bytes than the image)");
  }
  return ok && check_truncation();
}

void Inflater::adler_add(const uint8_t* p, size_t n, bool zero_tail) {
  if (n == 0) return;
  if (zero_tail) {
    // one byte, then n - 1 zero bytes: a stays, b gains a for each
    adler_a_ = (adler_a_ + p[0]) % kAdler32Mod;
    adler_b_ = static_cast<uint32_t>((adler_b_ + uint64_t{adler_a_} * n) % kAdler32Mod);
    return;
  }
  adler32_update(adler_a_, adler_b_, p, n);
}

const uint8_t* Inflater::read(size_t n, bool* zero_tail) {
  if (err_) return nullptr;
  while (out_ - rd_ < n)
    if (!decode(n)) return nullptr;
  const uint8_t* p = buf_.data() + rd_;
  rd_ += n;
  const bool zt = n <= 1 || (p[1] == 0 && (n == 2 || std::memcmp(p + 1, p + 2, n - 2) == 0));
  adler_add(p, n, zt);
  *zero_tail = zt;
  return p;
}

const uint8_t* Inflater::read_some(size_t* n) {
  *n = 0;
  if (err_) return nullptr;
  while (out_ == rd_) {
    if (header_done_ && block_ == Block::kDone) return nullptr;
    if (!decode(cap_)) return nullptr;
  }
  const uint8_t* p = buf_.data() + rd_;
  *n = out_ - rd_;
  adler_add(p, *n, false);
  rd_ = out_;
  return p;
}

bool Inflater::finish() {
  size_t k;
  while (read_some(&k)) {
  }
  if (err_) return false;
  take(bitcnt_ & 7);
  pos_ -= bitcnt_ >> 3;
  bitbuf_ = 0;
  bitcnt_ = 0;
  if (pos_ + 4 > n_) return fail("truncated image data (no adler32 checksum)");
  const uint32_t want = (uint32_t{in_[pos_]} << 24) | (uint32_t{in_[pos_ + 1]} << 16) | (uint32_t{in_[pos_ + 2]} << 8) | in_[pos_ + 3];
  pos_ += 4;
  if (want != ((adler_b_ << 16) | adler_a_)) return fail("incorrect data check (adler32)");
  return true;
}

bool zlib_decompress(const uint8_t* in, size_t n, std::vector<uint8_t>& out, const char** err) {
  Inflater inf(in, n, 0);
  out.clear();
  size_t k;
  while (const uint8_t* p = inf.read_some(&k)) out.insert(out.end(), p, p + k);
  if (!inf.finish()) {
    *err = inf.error();
    return false;
  }
  return true;
}

}  // namespace png
}  // namespace knet
