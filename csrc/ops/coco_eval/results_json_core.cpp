// COCO JSON readers (see results_json.h): recursive descent over the shapes COCO files have,
// with the generic skipper of json_parser.h for everything else.
#include "ops/coco_eval/results_json.h"

#include <cstring>

namespace knet {
namespace coco {

namespace json {

void unescape(const char* s, size_t len, std::string& out) {
  out.clear();
  out.reserve(len);
  const char* end = s + len;
  while (s < end) {
    if (*s != '\\') {
      out.push_back(*s++);
      continue;
    }
    const char e = s[1];
    s += 2;
    switch (e) {
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'u': {
        unsigned cp = 0;
        for (int i = 0; i < 4; ++i) cp = cp * 16 + static_cast<unsigned>(Parser::hex(s[i]));
        s += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && s + 6 <= end && s[0] == '\\' && s[1] == 'u') {
          unsigned lo = 0;
          bool ok = true;
          for (int i = 0; i < 4; ++i) {
            const int h = Parser::hex(s[2 + i]);
            ok = ok && h >= 0;
            lo = lo * 16 + static_cast<unsigned>(h < 0 ? 0 : h);
          }
          if (ok && lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            s += 6;
          }
        }
        if (cp < 0x80) {
          out.push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
          out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
          out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
          out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
          out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
          out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
          out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
          out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
          out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
          out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
        break;
      }
      default: out.push_back(e); break;  // " \ /
    }
  }
}

}  // namespace json

namespace {

using json::Parser;
using json::Str;

bool segmentation(Parser& ps, ObjectRecord& r) {
  ps.ws();
  if (ps.p < ps.end && *ps.p == '[') {  // polygons: [[x, y, ...], ...]
    r.seg_kind = 3;
    return ps.array([&](size_t) {
      if (!ps.peek('[')) {
        r.polygon_not_list = true;
        return ps.skip_value();
      }
      r.polygons.emplace_back();
      auto& poly = r.polygons.back();
      return ps.number_array([&](double d, int64_t, bool) { poly.push_back(d); });
    });
  }
  if (!ps.peek('{')) {
    r.seg_kind = -1;  // neither a polygon list nor an RLE dict
    return ps.skip_value();
  }
  std::string scratch;
  const bool ok = ps.object([&](const Str& key) {
    const Str k = json::unescaped(key, scratch);
    if (k.is("size", 4)) {
      int64_t sz[2] = {0, 0};
      size_t n = 0;
      bool ints = true;
      if (!ps.peek('[')) {
        r.seg_size_ok = false;
        return ps.skip_value();
      }
      if (!ps.number_array([&](double d, int64_t i, bool is_int) {
            const int64_t v = is_int ? i : static_cast<int64_t>(d);
            ints = ints && (is_int || d == static_cast<double>(v));
            if (n < 2) sz[n] = v;
            ++n;
          }))
        return false;
      r.seg_size_ok = ints && n == 2 && sz[0] >= 0 && sz[1] >= 0 && sz[0] <= 0xffffffffLL && sz[1] <= 0xffffffffLL;
      if (r.seg_size_ok) {
        r.seg_h = static_cast<uint32_t>(sz[0]);
        r.seg_w = static_cast<uint32_t>(sz[1]);
      }
      return true;
    }
    if (k.is("counts", 6)) {
      ps.ws();
      if (ps.p < ps.end && *ps.p == '"') {
        r.seg_kind = 1;
        return ps.string(r.counts);
      }
      if (!ps.peek('[')) {
        r.seg_kind = -1;
        return ps.skip_value();
      }
      r.seg_kind = 2;
      r.counts_list.clear();
      return ps.number_array([&](double d, int64_t i, bool is_int) {
        r.counts_list.push_back(static_cast<uint32_t>(is_int ? i : static_cast<int64_t>(d)));
      });
    }
    return ps.skip_value();
  });
  if (ok && r.seg_kind == 0) r.seg_kind = -1;  // a dict without counts: invalid RLE
  return ok;
}

}  // namespace

bool parse_record(Parser& ps, ObjectRecord& r) {
  std::string scratch;
  return ps.object([&](const Str& key) {
    ps.ws();
    if (ps.p < ps.end && *ps.p == 'n') return ps.literal("null");  // null = absent
    const Str k = json::unescaped(key, scratch);
    if (k.is("image_id", 8)) {
      r.has_image = true;
      return ps.integer(r.image_id, r.image_is_int);
    }
    if (k.is("category_id", 11)) {
      r.has_cat = true;
      return ps.integer(r.category_id, r.cat_is_int);
    }
    if (k.is("score", 5)) {
      int64_t i;
      bool is_int;
      r.has_score = true;
      return ps.number(r.score, i, is_int);
    }
    if (k.is("segmentation", 12)) return segmentation(ps, r);
    if (k.is("bbox", 4)) {
      r.has_box = true;
      r.box_len = 0;
      return ps.number_array([&](double d, int64_t, bool) {
        if (r.box_len < 4) r.box[r.box_len] = d;
        ++r.box_len;
      });
    }
    if (k.is("area", 4)) {
      int64_t i;
      bool is_int;
      r.has_area = true;
      return ps.number(r.area, i, is_int);
    }
    if (k.is("iscrowd", 7)) return ps.truthy(r.crowd);
    if (k.is("id", 2)) {
      r.has_id = true;
      return ps.integer(r.id, r.id_is_int);
    }
    return ps.skip_value();
  });
}

bool ResultsScanner::open(size_t& first, bool& empty, std::string& error) const {
  Parser ps{buf_, buf_ + len_, buf_, {}};
  if (len_ >= 3 && static_cast<unsigned char>(buf_[0]) == 0xEF && static_cast<unsigned char>(buf_[1]) == 0xBB &&
      static_cast<unsigned char>(buf_[2]) == 0xBF)
    ps.p += 3;  // UTF-8 BOM
  ps.ws();
  if (ps.p >= ps.end || *ps.p != '[') {
    error = "must hold a JSON list of detections";
    if (ps.p < ps.end && *ps.p == '{') return false;
    if (!ps.skip_value()) error = ps.err;
    return false;
  }
  ++ps.p;
  empty = ps.peek(']');
  first = static_cast<size_t>(ps.p - buf_);
  if (empty) {
    ++ps.p;
    ps.ws();
    if (ps.p != ps.end) {
      error = "extra data at byte " + std::to_string(ps.p - buf_);
      return false;
    }
  }
  return true;
}

bool ResultsScanner::record(size_t at, ObjectRecord& r, size_t& next, bool& last, bool& not_object,
                            std::string& error) const {
  Parser ps{buf_ + at, buf_ + len_, buf_, {}};
  not_object = false;
  last = false;
  if (!ps.peek('{')) {
    if (ps.p < ps.end) {
      not_object = true;
      return false;
    }
    ps.fail("unexpected end");
    error = ps.err;
    return false;
  }
  bool done = false;
  if (!parse_record(ps, r) || (!ps.next(']', done) && !done)) {
    error = ps.err;
    return false;
  }
  if (done) {
    last = true;
    ps.ws();
    if (ps.p != ps.end) {
      error = "extra data at byte " + std::to_string(ps.p - buf_);
      return false;
    }
  }
  ps.ws();
  next = static_cast<size_t>(ps.p - buf_);
  return true;
}

size_t ResultsScanner::guess_record_start(size_t from) const {
  const char* p = buf_ + from;
  const char* end = buf_ + len_;
  auto sp = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
  while (p < end) {
    const char* q = static_cast<const char*>(std::memchr(p, '}', static_cast<size_t>(end - p)));
    if (q == nullptr) return std::string::npos;
    const char* s = q + 1;
    while (s < end && sp(*s)) ++s;
    if (s < end && *s == ',') {
      ++s;
      while (s < end && sp(*s)) ++s;
      if (s < end && *s == '{') return static_cast<size_t>(s - buf_);
    }
    p = q + 1;
  }
  return std::string::npos;
}

bool parse_gt_json(const char* buf, size_t len, GtFile& out, std::string& error, bool& json_error) {
  Parser ps{buf, buf + len, buf, {}};
  if (len >= 3 && static_cast<unsigned char>(buf[0]) == 0xEF && static_cast<unsigned char>(buf[1]) == 0xBB &&
      static_cast<unsigned char>(buf[2]) == 0xBF)
    ps.p += 3;
  json_error = false;
  bool seen[3] = {false, false, false};  // images, annotations, categories (lists)
  std::string structure;                 // first structural problem
  std::string scratch;
  auto entry_error = [&](const char* what, size_t i, const char* key) {
    if (structure.empty())
      structure = std::string("malformed image or category entry (") + what + " " + std::to_string(i) + ": '" + key +
                  "' missing or not a number)";
  };
  bool ok;
  if (!ps.peek('{')) {
    ok = ps.skip_value();
    if (ok) structure = "is not a COCO instances file (no 'images' list)";
  } else {
    ok = ps.object([&](const Str& key) {
      const Str k = json::unescaped(key, scratch);
      if (k.is("images", 6) && ps.peek('[')) {
        seen[0] = true;
        return ps.array([&](size_t i) {
          int64_t v[3] = {0, 0, 0};
          bool got[3] = {false, false, false};
          if (!ps.peek('{')) {
            entry_error("image", i, "id");
            return ps.skip_value();
          }
          const bool r = ps.object([&](const Str& kk) {
            const Str f = json::unescaped(kk, scratch);
            const int slot = f.is("id", 2) ? 0 : f.is("height", 6) ? 1 : f.is("width", 5) ? 2 : -1;
            if (slot < 0 || !(ps.peek('-') || (ps.p < ps.end && *ps.p >= '0' && *ps.p <= '9'))) return ps.skip_value();
            double d;
            int64_t n;
            bool is_int;
            if (!ps.number(d, n, is_int)) return false;
            v[slot] = is_int ? n : static_cast<int64_t>(d);  // int(): truncation
            got[slot] = true;
            return true;
          });
          for (int s = 0; s < 3; ++s)
            if (!got[s]) entry_error("image", i, s == 0 ? "id" : s == 1 ? "height" : "width");
          out.img_ids.push_back(v[0]);
          out.heights.push_back(v[1]);
          out.widths.push_back(v[2]);
          return r;
        });
      }
      if (k.is("categories", 10) && ps.peek('[')) {
        seen[2] = true;
        return ps.array([&](size_t i) {
          int64_t id = 0;
          bool got = false;
          std::string name;
          bool has_name = false;
          if (!ps.peek('{')) {
            entry_error("category", i, "id");
            return ps.skip_value();
          }
          const bool r = ps.object([&](const Str& kk) {
            const Str f = json::unescaped(kk, scratch);
            if (f.is("id", 2) && (ps.peek('-') || (ps.p < ps.end && *ps.p >= '0' && *ps.p <= '9'))) {
              double d;
              bool is_int;
              if (!ps.number(d, id, is_int)) return false;
              if (!is_int) id = static_cast<int64_t>(d);
              got = true;
              return true;
            }
            if (f.is("name", 4) && ps.peek('"')) {
              Str s;
              if (!ps.string(s)) return false;
              if (s.escaped)
                json::unescape(s.p, s.len, name);
              else
                name.assign(s.p, s.len);
              has_name = true;
              return true;
            }
            return ps.skip_value();
          });
          if (!got) entry_error("category", i, "id");
          out.cat_ids.push_back(id);
          out.cat_names.push_back(has_name ? name : std::to_string(id));
          return r;
        });
      }
      if (k.is("annotations", 11) && ps.peek('[')) {
        seen[1] = true;
        return ps.array([&](size_t) {
          out.anns.emplace_back();
          if (!ps.peek('{')) {  // not an object: flagged by has_image = false + seg_kind
            out.anns.back().seg_kind = -2;
            return ps.skip_value();
          }
          return parse_record(ps, out.anns.back());
        });
      }
      return ps.skip_value();
    });
  }
  if (ok) {
    ps.ws();
    if (ps.p != ps.end) {
      ps.fail("extra data");
      ok = false;
    }
  }
  if (!ok) {
    error = ps.err;
    json_error = true;
    return false;
  }
  if (!structure.empty() && structure[0] == 'i') {  // not an object at all
    error = structure;
    return false;
  }
  static const char* names[3] = {"images", "annotations", "categories"};
  for (int s = 0; s < 3; ++s)
    if (!seen[s]) {
      error = std::string("is not a COCO instances file (no '") + names[s] + "' list)";
      return false;
    }
  if (!structure.empty()) {
    error = structure;
    return false;
  }
  return true;
}

}  // namespace coco
}  // namespace knet
