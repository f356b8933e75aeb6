// A small, strict, read-only JSON scanner for the COCO readers (results and ground-truth files).
//
// The buffer is never modified: strings are returned as (pointer, length, escaped) views of the
// raw JSON text, and `unescape` turns an escaped view into its bytes when needed. That makes it
// safe for several threads to parse parts of one buffer speculatively (results_json_core.cpp).
// Numbers are parsed with std::from_chars (correctly rounded, like Python's float()). Errors
// name the byte offset from the start of the buffer.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace knet {
namespace coco {
namespace json {

struct Str {
  const char* p = nullptr;
  size_t len = 0;
  bool escaped = false;  // contains backslash escapes: use unescape() for the bytes
  bool is(const char* lit, size_t n) const { return !escaped && len == n && std::memcmp(p, lit, n) == 0; }
};

// The bytes of a validated JSON string body (escapes resolved, \u as UTF-8).
void unescape(const char* s, size_t len, std::string& out);

// s itself, or (when it holds escapes) its unescaped bytes, written to scratch.
inline Str unescaped(const Str& s, std::string& scratch) {
  if (!s.escaped) return s;
  unescape(s.p, s.len, scratch);
  return Str{scratch.data(), scratch.size(), false};
}

struct Parser {
  const char* p;
  const char* end;
  const char* begin;
  std::string err;
  size_t err_at = 0;

  bool fail(const char* what) {
    if (err.empty()) {
      err_at = static_cast<size_t>(p - begin);
      err = std::string(what) + " at byte " + std::to_string(err_at);
    }
    return false;
  }
  void ws() {
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) ++p;
  }
  bool peek(char c) {
    ws();
    return p < end && *p == c;
  }
  bool expect(char c) {
    ws();
    if (p >= end || *p != c) return fail((std::string("expected '") + c + "'").c_str());
    ++p;
    return true;
  }
  // ',' -> true (more), closing `close` -> false with done = true; anything else fails.
  bool next(char close, bool& done) {
    ws();
    if (p < end && *p == ',') {
      ++p;
      return true;
    }
    done = expect(close);
    return false;
  }
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool string(Str& out) {
    ws();
    if (p >= end || *p != '"') return fail("expected a string");
    ++p;
    out.p = p;
    out.escaped = false;
    const char* q = static_cast<const char*>(std::memchr(p, '"', static_cast<size_t>(end - p)));
    if (q == nullptr) return fail("unterminated string");
    if (std::memchr(p, '\\', static_cast<size_t>(q - p)) == nullptr) {
      for (const char* c = p; c < q; ++c)
        if (static_cast<unsigned char>(*c) < 0x20) {
          p = c;
          return fail("control character in string");
        }
      out.len = static_cast<size_t>(q - p);
      p = q + 1;
      return true;
    }
    out.escaped = true;  // walk it: an escaped quote does not end the string
    while (true) {
      if (p >= end) return fail("unterminated string");
      const char c = *p;
      if (c == '"') break;
      if (static_cast<unsigned char>(c) < 0x20) return fail("control character in string");
      if (c != '\\') {
        ++p;
        continue;
      }
      if (p + 1 >= end) return fail("bad escape");
      const char e = p[1];
      if (e == 'u') {
        if (p + 6 > end) return fail("bad \\u escape");
        for (int i = 2; i < 6; ++i)
          if (hex(p[i]) < 0) return fail("bad \\u escape");
        p += 6;
      } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
        p += 2;
      } else {
        return fail("bad escape");
      }
    }
    out.len = static_cast<size_t>(p - out.p);
    ++p;
    return true;
  }
  // is_int: no fraction/exponent and within int64
  bool number(double& d, int64_t& i, bool& is_int) {
    ws();
    const char* s = p;
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
      if (r.ec == std::errc()) {
        d = static_cast<double>(i);
        return true;
      }
      is_int = false;  // out of int64 range: keep the double
    }
    auto r = std::from_chars(s, p, d);
    if (r.ec != std::errc() && r.ec != std::errc::result_out_of_range) return fail("bad number");
    return true;
  }
  // a number that is an integer (12 or 12.0); ok = false for other numbers
  bool integer(int64_t& v, bool& ok) {
    double d;
    bool is_int;
    if (!number(d, v, is_int)) return false;
    ok = is_int;
    if (!is_int) {
      v = static_cast<int64_t>(d);
      ok = d == static_cast<double>(v) && d > -9.2e18 && d < 9.2e18;
    }
    return true;
  }
  bool literal(const char* lit) {
    const size_t n = std::strlen(lit);
    if (static_cast<size_t>(end - p) < n || std::memcmp(p, lit, n) != 0) return fail("bad literal");
    p += n;
    return true;
  }
  // Truthiness of any value, as Python's bool() of the parsed object.
  bool truthy(bool& t) {
    ws();
    if (p >= end) return fail("unexpected end");
    const char c = *p;
    if (c == 't') return (t = true, literal("true"));
    if (c == 'f') return (t = false, literal("false"));
    if (c == 'n') return (t = false, literal("null"));
    if (c == '"') {
      Str s;
      if (!string(s)) return false;
      t = s.len > 0;
      return true;
    }
    if (c == '[' || c == '{') {
      const char* s = p + 1;
      if (!skip_value()) return false;
      while (s < p && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) ++s;
      t = (*s != ']' && *s != '}');
      return true;
    }
    double d;
    int64_t i;
    bool is_int;
    if (!number(d, i, is_int)) return false;
    t = is_int ? i != 0 : d != 0;
    return true;
  }
  bool skip_value(int depth = 0) {
    if (depth > 512) return fail("nesting too deep");
    ws();
    if (p >= end) return fail("unexpected end");
    const char c = *p;
    if (c == '"') {
      Str s;
      return string(s);
    }
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++p;
      if (peek(close)) {
        ++p;
        return true;
      }
      bool done = false;
      do {
        if (c == '{') {
          Str k;
          if (!string(k) || !expect(':')) return false;
        }
        if (!skip_value(depth + 1)) return false;
      } while (next(close, done));
      return done;
    }
    if (c == 't') return literal("true");
    if (c == 'f') return literal("false");
    if (c == 'n') return literal("null");
    double d;
    int64_t i;
    bool is_int;
    return number(d, i, is_int);
  }
  // [n, n, ...]: push(double, int64, is_int) per element
  template <typename F>
  bool number_array(F&& push) {
    if (!expect('[')) return false;
    if (peek(']')) {
      ++p;
      return true;
    }
    bool done = false;
    do {
      double d;
      int64_t i;
      bool is_int;
      if (!number(d, i, is_int)) return false;
      push(d, i, is_int);
    } while (next(']', done));
    return done;
  }
  // {"key": value, ...}: on_key(Str key) parses the value (or skips it) and returns false on error
  template <typename F>
  bool object(F&& on_key) {
    if (!expect('{')) return false;
    if (peek('}')) {
      ++p;
      return true;
    }
    bool done = false;
    do {
      Str k;
      if (!string(k) || !expect(':')) return false;
      if (!on_key(k)) return false;
    } while (next('}', done));
    return done;
  }
  // [value, ...]: on_item(index) parses each element
  template <typename F>
  bool array(F&& on_item) {
    if (!expect('[')) return false;
    if (peek(']')) {
      ++p;
      return true;
    }
    bool done = false;
    size_t n = 0;
    do {
      if (!on_item(n++)) return false;
    } while (next(']', done));
    return done;
  }
};

}  // namespace json
}  // namespace coco
}  // namespace knet
