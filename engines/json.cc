// Recursive-descent JSON parser (RFC 8259). Depth is bounded so a hostile header cannot overflow the stack.
#include "json.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

namespace kvs {

class JsonParser {
 public:
  JsonParser(const char* data, size_t size) : p_(data), begin_(data), end_(data + size) {}

  Json document() {
    Json v = value(0);
    ws();
    if (p_ != end_) fail("trailing characters after the document");
    return v;
  }

 private:
  static constexpr int kMaxDepth = 256;
  const char* p_;
  const char* begin_;
  const char* end_;

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("JSON parse error at offset " + std::to_string(p_ - begin_) + ": " + what);
  }
  void ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool literal(const char* word) {
    const char* q = p_;
    for (; *word; ++word, ++q)
      if (q >= end_ || *q != *word) return false;
    p_ = q;
    return true;
  }

  Json value(int depth) {
    if (depth > kMaxDepth) fail("nesting too deep");
    ws();
    if (p_ >= end_) fail("unexpected end of input");
    Json v;
    switch (*p_) {
      case '{': return object(depth);
      case '[': return array(depth);
      case '"': v.kind_ = Json::Kind::String; v.str_ = string(); return v;
      case 't': if (!literal("true")) fail("invalid literal"); v.kind_ = Json::Kind::Bool; v.bool_ = true; return v;
      case 'f': if (!literal("false")) fail("invalid literal"); v.kind_ = Json::Kind::Bool; return v;
      case 'n': if (!literal("null")) fail("invalid literal"); return v;
      default: return number();
    }
  }

  Json object(int depth) {
    Json v;
    v.kind_ = Json::Kind::Object;
    v.obj_ = std::make_shared<std::map<std::string, Json>>();
    ++p_;  // '{'
    ws();
    if (p_ < end_ && *p_ == '}') { ++p_; return v; }
    for (;;) {
      ws();
      if (p_ >= end_ || *p_ != '"') fail("expected a string key");
      std::string key = string();
      ws();
      if (p_ >= end_ || *p_ != ':') fail("expected ':'");
      ++p_;
      (*v.obj_)[key] = value(depth + 1);  // a repeated key keeps the last value, like Python's json
      ws();
      if (p_ < end_ && *p_ == ',') { ++p_; continue; }
      if (p_ < end_ && *p_ == '}') { ++p_; return v; }
      fail("expected ',' or '}'");
    }
  }

  Json array(int depth) {
    Json v;
    v.kind_ = Json::Kind::Array;
    v.arr_ = std::make_shared<std::vector<Json>>();
    ++p_;  // '['
    ws();
    if (p_ < end_ && *p_ == ']') { ++p_; return v; }
    for (;;) {
      v.arr_->push_back(value(depth + 1));
      ws();
      if (p_ < end_ && *p_ == ',') { ++p_; continue; }
      if (p_ < end_ && *p_ == ']') { ++p_; return v; }
      fail("expected ',' or ']'");
    }
  }

  static void utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6)); out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18)); out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F));
    }
  }
  uint32_t hex4() {
    if (end_ - p_ < 4) fail("truncated \\u escape");
    uint32_t cp = 0;
    for (int i = 0; i < 4; ++i, ++p_) {
      char c = *p_;
      cp <<= 4;
      if (c >= '0' && c <= '9') cp |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') cp |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') cp |= uint32_t(c - 'A' + 10);
      else fail("invalid \\u escape");
    }
    return cp;
  }

  std::string string() {
    ++p_;  // opening quote
    std::string out;
    while (p_ < end_ && *p_ != '"') {
      char c = *p_++;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') { out += c; continue; }
      if (p_ >= end_) break;
      char e = *p_++;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && end_ - p_ >= 6 && p_[0] == '\\' && p_[1] == 'u') {
            p_ += 2;
            uint32_t lo = hex4();
            if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            else { utf8(out, cp); cp = lo; }
          }
          utf8(out, cp);
          break;
        }
        default: fail(std::string("invalid escape \\") + e);
      }
    }
    if (p_ >= end_) fail("unterminated string");
    ++p_;  // closing quote
    return out;
  }

  Json number() {
    const char* start = p_;
    bool isInt = true;
    if (p_ < end_ && *p_ == '-') ++p_;
    if (p_ >= end_ || !(*p_ >= '0' && *p_ <= '9')) fail("unexpected character");
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    if (p_ < end_ && *p_ == '.') { isInt = false; ++p_; while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_; }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      isInt = false; ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    std::string text(start, p_);
    Json v;
    v.kind_ = Json::Kind::Number;
    v.num_ = std::strtod(text.c_str(), nullptr);
    if (isInt) {
      errno = 0;
      long long i = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == 0) { v.isInt_ = true; v.int_ = i; }
    }
    return v;
  }
};

Json Json::parse(const std::string& text) { return parse(text.data(), text.size()); }
Json Json::parse(const char* data, size_t size) { return JsonParser(data, size).document(); }

const char* Json::kindName() const {
  switch (kind_) {
    case Kind::Null: return "null";
    case Kind::Bool: return "boolean";
    case Kind::Number: return "number";
    case Kind::String: return "string";
    case Kind::Array: return "array";
    case Kind::Object: return "object";
  }
  return "?";
}

static std::runtime_error kindError(const Json& j, const char* want) {
  return std::runtime_error(std::string("expected a JSON ") + want + ", found " + j.kindName());
}

bool Json::asBool() const { if (kind_ != Kind::Bool) throw kindError(*this, "boolean"); return bool_; }
double Json::asNumber() const { if (kind_ != Kind::Number) throw kindError(*this, "number"); return num_; }
int64_t Json::asInt() const {
  if (kind_ != Kind::Number) throw kindError(*this, "integer");
  if (isInt_) return int_;
  if (std::isfinite(num_) && std::floor(num_) == num_ && std::fabs(num_) < 9.0e15) return static_cast<int64_t>(num_);
  throw std::runtime_error("expected a JSON integer, found " + std::to_string(num_));
}
const std::string& Json::asString() const { if (kind_ != Kind::String) throw kindError(*this, "string"); return str_; }
const std::vector<Json>& Json::asArray() const { if (kind_ != Kind::Array) throw kindError(*this, "array"); return *arr_; }
const std::map<std::string, Json>& Json::asObject() const {
  if (kind_ != Kind::Object) throw kindError(*this, "object");
  return *obj_;
}
const Json* Json::find(const std::string& key) const {
  if (kind_ != Kind::Object) return nullptr;
  auto it = obj_->find(key);
  return it == obj_->end() ? nullptr : &it->second;
}

}  // namespace kvs
