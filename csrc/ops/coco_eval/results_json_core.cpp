// COCO results JSON reader (see results_json.h): recursive descent over the one shape COCO
// results have, with a generic skipper for everything else.
#include <charconv>
#include <cstring>

#include "ops/coco_eval/results_json.h"

namespace knet {
namespace coco {

namespace {

struct Parser {
  char* p;
  char* end;
  char* begin;
  std::string err;

  bool fail(const char* what) {
    if (err.empty()) err = std::string(what) + " at byte " + std::to_string(p - begin);
    return false;
  }
  void ws() {
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) ++p;
  }
  bool expect(char c) {
    ws();
    if (p >= end || *p != c) return fail((std::string("expected '") + c + "'").c_str());
    ++p;
    return true;
  }
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  // string at p (after ws): unescaped in place; [out, out+len)
  bool string(char*& out, size_t& len) {
    ws();
    if (p >= end || *p != '"') return fail("expected a string");
    ++p;
    out = p;
    {  // fast path: no escape before the closing quote -> the string is used where it is
      const char* q = static_cast<const char*>(std::memchr(p, '"', static_cast<size_t>(end - p)));
      if (q != nullptr) {
        bool plain = std::memchr(p, '\\', static_cast<size_t>(q - p)) == nullptr;
        for (const char* c = p; plain && c < q; ++c) plain = static_cast<unsigned char>(*c) >= 0x20;
        if (plain) {
          len = static_cast<size_t>(q - p);
          p = const_cast<char*>(q) + 1;
          return true;
        }
      }
    }
    char* w = p;
    while (true) {
      if (p >= end) return fail("unterminated string");
      const char c = *p;
      if (c == '"') {
        ++p;
        break;
      }
      if (static_cast<unsigned char>(c) < 0x20) return fail("control character in string");
      if (c != '\\') {
        *w++ = *p++;
        continue;
      }
      if (p + 1 >= end) return fail("bad escape");
      const char e = p[1];
      p += 2;
      switch (e) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '/': *w++ = '/'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case 'u': {
          if (p + 4 > end) return fail("bad \\u escape");
          unsigned cp = 0;
          for (int i = 0; i < 4; ++i) {
            const int h = hex(p[i]);
            if (h < 0) return fail("bad \\u escape");
            cp = cp * 16 + static_cast<unsigned>(h);
          }
          p += 4;
          if (cp >= 0xD800 && cp <= 0xDBFF && p + 6 <= end && p[0] == '\\' && p[1] == 'u') {
            unsigned lo = 0;
            bool ok = true;
            for (int i = 0; i < 4; ++i) {
              const int h = hex(p[2 + i]);
              ok = ok && h >= 0;
              lo = lo * 16 + static_cast<unsigned>(h < 0 ? 0 : h);
            }
            if (ok && lo >= 0xDC00 && lo <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
              p += 6;
            }
          }
          // UTF-8 (never longer than the 6+ source characters it replaces)
          if (cp < 0x80) {
            *w++ = static_cast<char>(cp);
          } else if (cp < 0x800) {
            *w++ = static_cast<char>(0xC0 | (cp >> 6));
            *w++ = static_cast<char>(0x80 | (cp & 0x3F));
          } else if (cp < 0x10000) {
            *w++ = static_cast<char>(0xE0 | (cp >> 12));
            *w++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            *w++ = static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            *w++ = static_cast<char>(0xF0 | (cp >> 18));
            *w++ = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            *w++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            *w++ = static_cast<char>(0x80 | (cp & 0x3F));
          }
          break;
        }
        default:
          return fail("bad escape");
      }
    }
    len = static_cast<size_t>(w - out);
    return true;
  }
  // number: is_int tells whether it had no fraction/exponent
  bool number(double& d, int64_t& i, bool& is_int) {
    ws();
    char* s = p;
    if (p < end && *p == '-') ++p;
    if (p >= end || !(*p >= '0' && *p <= '9')) return fail("expected a number");
    while (p < end && *p >= '0' && *p <= '9') ++p;
    is_int = true;
    if (p < end && *p == '.') {
      is_int = false;
      ++p;
      while (p < end && *p >= '0' && *p <= '9') ++p;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
      is_int = false;
      ++p;
      if (p < end && (*p == '+' || *p == '-')) ++p;
      while (p < end && *p >= '0' && *p <= '9') ++p;
    }
    if (is_int) {
      auto r = std::from_chars(s, p, i);
      if (r.ec != std::errc()) is_int = false;  // out of int64 range: keep the double
      d = static_cast<double>(i);
    }
    auto r = std::from_chars(s, p, d);
    if (r.ec != std::errc() && r.ec != std::errc::result_out_of_range) return fail("bad number");
    return true;
  }
  bool literal(const char* lit) {
    const size_t n = std::strlen(lit);
    if (static_cast<size_t>(end - p) < n || std::memcmp(p, lit, n) != 0) return fail("bad literal");
    p += n;
    return true;
  }
  bool skip_value(int depth = 0) {
    if (depth > 512) return fail("nesting too deep");
    ws();
    if (p >= end) return fail("unexpected end");
    const char c = *p;
    if (c == '"') {
      char* s;
      size_t n;
      return string(s, n);
    }
    if (c == '{') {
      ++p;
      ws();
      if (p < end && *p == '}') {
        ++p;
        return true;
      }
      while (true) {
        char* s;
        size_t n;
        if (!string(s, n) || !expect(':') || !skip_value(depth + 1)) return false;
        ws();
        if (p < end && *p == ',') {
          ++p;
          continue;
        }
        return expect('}');
      }
    }
    if (c == '[') {
      ++p;
      ws();
      if (p < end && *p == ']') {
        ++p;
        return true;
      }
      while (true) {
        if (!skip_value(depth + 1)) return false;
        ws();
        if (p < end && *p == ',') {
          ++p;
          continue;
        }
        return expect(']');
      }
    }
    if (c == 't') return literal("true");
    if (c == 'f') return literal("false");
    if (c == 'n') return literal("null");
    double d;
    int64_t i;
    bool is_int;
    return number(d, i, is_int);
  }
  // [n, n, ...] of numbers
  template <typename F>
  bool number_array(F&& push) {
    if (!expect('[')) return false;
    ws();
    if (p < end && *p == ']') {
      ++p;
      return true;
    }
    while (true) {
      double d;
      int64_t i;
      bool is_int;
      if (!number(d, i, is_int)) return false;
      push(d, i, is_int);
      ws();
      if (p < end && *p == ',') {
        ++p;
        continue;
      }
      return expect(']');
    }
  }
  bool segmentation(ResultRecord& r) {
    ws();
    if (p < end && *p == '[') {  // polygons: [[x, y, ...], ...]
      ++p;
      r.seg_kind = 3;
      ws();
      if (p < end && *p == ']') {
        ++p;
        return true;
      }
      while (true) {
        r.polygons.emplace_back();
        auto& poly = r.polygons.back();
        if (!number_array([&](double d, int64_t, bool) { poly.push_back(d); })) return false;
        ws();
        if (p < end && *p == ',') {
          ++p;
          continue;
        }
        return expect(']');
      }
    }
    if (!expect('{')) return false;
    ws();
    if (p < end && *p == '}') {
      ++p;
      return true;
    }
    while (true) {
      char* key;
      size_t klen;
      if (!string(key, klen) || !expect(':')) return false;
      if (klen == 4 && std::memcmp(key, "size", 4) == 0) {
        std::vector<int64_t> sz;
        bool ints = true;
        if (!number_array([&](double d, int64_t i, bool is_int) {
              sz.push_back(is_int ? i : static_cast<int64_t>(d));
              ints = ints && (is_int || d == static_cast<double>(static_cast<int64_t>(d)));
            }))
          return false;
        r.seg_size_ok = ints && sz.size() == 2 && sz[0] >= 0 && sz[1] >= 0 && sz[0] <= 0xffffffffLL && sz[1] <= 0xffffffffLL;
        if (r.seg_size_ok) {
          r.seg_h = static_cast<uint32_t>(sz[0]);
          r.seg_w = static_cast<uint32_t>(sz[1]);
        }
      } else if (klen == 6 && std::memcmp(key, "counts", 6) == 0) {
        ws();
        if (p < end && *p == '"') {
          char* s;
          size_t n;
          if (!string(s, n)) return false;
          r.seg_kind = 1;
          r.counts = s;
          r.counts_len = n;
        } else {
          r.seg_kind = 2;
          if (!number_array([&](double d, int64_t i, bool is_int) {
                r.counts_list.push_back(static_cast<uint32_t>(is_int ? i : static_cast<int64_t>(d)));
              }))
            return false;
        }
      } else if (!skip_value()) {
        return false;
      }
      ws();
      if (p < end && *p == ',') {
        ++p;
        continue;
      }
      if (!expect('}')) return false;
      if (r.seg_kind == 0) r.seg_kind = -1;  // a dict without counts: invalid RLE
      return true;
    }
  }
  bool record(ResultRecord& r) {
    if (!expect('{')) return false;
    ws();
    if (p < end && *p == '}') {
      ++p;
      return true;
    }
    while (true) {
      char* key;
      size_t klen;
      if (!string(key, klen) || !expect(':')) return false;
      ws();
      const bool is_null = p < end && *p == 'n';
      if (is_null) {
        if (!literal("null")) return false;
      } else if (klen == 8 && std::memcmp(key, "image_id", 8) == 0) {
        double d;
        if (!number(d, r.image_id, r.image_is_int)) return false;
        if (!r.image_is_int) {
          r.image_id = static_cast<int64_t>(d);
          r.image_is_int = d == static_cast<double>(r.image_id);
        }
        r.has_image = true;
      } else if (klen == 11 && std::memcmp(key, "category_id", 11) == 0) {
        double d;
        if (!number(d, r.category_id, r.cat_is_int)) return false;
        if (!r.cat_is_int) {
          r.category_id = static_cast<int64_t>(d);
          r.cat_is_int = d == static_cast<double>(r.category_id);
        }
        r.has_cat = true;
      } else if (klen == 5 && std::memcmp(key, "score", 5) == 0) {
        int64_t i;
        bool is_int;
        if (!number(r.score, i, is_int)) return false;
        r.has_score = true;
      } else if (klen == 4 && std::memcmp(key, "bbox", 4) == 0) {
        r.box_len = 0;
        if (!number_array([&](double d, int64_t, bool) {
              if (r.box_len < 4) r.box[r.box_len] = d;
              ++r.box_len;
            }))
          return false;
        r.has_box = true;
      } else if (klen == 12 && std::memcmp(key, "segmentation", 12) == 0) {
        if (!segmentation(r)) return false;
      } else if (!skip_value()) {
        return false;
      }
      ws();
      if (p < end && *p == ',') {
        ++p;
        continue;
      }
      return expect('}');
    }
  }
};

}  // namespace

bool parse_results_json(char* buf, size_t len, std::vector<ResultRecord>& out, std::string& error) {
  Parser ps{buf, buf + len, buf, {}};
  if (len >= 3 && static_cast<unsigned char>(buf[0]) == 0xEF && static_cast<unsigned char>(buf[1]) == 0xBB &&
      static_cast<unsigned char>(buf[2]) == 0xBF)
    ps.p += 3;  // UTF-8 BOM
  ps.ws();
  if (ps.p >= ps.end || *ps.p != '[') {
    error = "must hold a JSON list of detections";
    if (ps.p < ps.end && *ps.p == '{') return false;
    if (!ps.skip_value()) error = ps.err;
    return false;
  }
  ++ps.p;
  ps.ws();
  if (ps.p < ps.end && *ps.p == ']') {
    ++ps.p;
  } else {
    while (true) {
      ps.ws();
      if (ps.p < ps.end && *ps.p != '{') {
        error = "entry " + std::to_string(out.size()) + " is not an object";
        return false;
      }
      out.emplace_back();
      if (!ps.record(out.back())) {
        error = ps.err;
        return false;
      }
      ps.ws();
      if (ps.p < ps.end && *ps.p == ',') {
        ++ps.p;
        continue;
      }
      if (!ps.expect(']')) {
        error = ps.err;
        return false;
      }
      break;
    }
  }
  ps.ws();
  if (ps.p != ps.end) {
    error = "extra data at byte " + std::to_string(ps.p - ps.begin);
    return false;
  }
  return true;
}

}  // namespace coco
}  // namespace knet
