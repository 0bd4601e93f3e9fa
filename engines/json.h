// A small JSON reader for config.json, model.safetensors.index.json and safetensors headers.
// Values are immutable after parsing; numbers are held as double (and as int64 when written as integers).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kvs {

class Json {
 public:
  enum class Kind { Null, Bool, Number, String, Array, Object };

  // Parses a whole document. Throws std::runtime_error("JSON parse error at offset N: ...").
  static Json parse(const std::string& text);
  static Json parse(const char* data, size_t size);

  Kind kind() const { return kind_; }
  bool isNull() const { return kind_ == Kind::Null; }
  bool isBool() const { return kind_ == Kind::Bool; }
  bool isNumber() const { return kind_ == Kind::Number; }
  bool isInteger() const { return kind_ == Kind::Number && isInt_; }
  bool isString() const { return kind_ == Kind::String; }
  bool isArray() const { return kind_ == Kind::Array; }
  bool isObject() const { return kind_ == Kind::Object; }

  bool asBool() const;            // each as*() throws when the kind differs
  double asNumber() const;
  int64_t asInt() const;          // also accepts a number with no fractional part (e.g. 2.0)
  const std::string& asString() const;
  const std::vector<Json>& asArray() const;
  const std::map<std::string, Json>& asObject() const;

  // Object access: nullptr when absent (or when this is not an object).
  const Json* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }
  const char* kindName() const;

 private:
  friend class JsonParser;
  Kind kind_ = Kind::Null;
  bool isInt_ = false;
  bool bool_ = false;
  double num_ = 0;
  int64_t int_ = 0;
  std::string str_;
  std::shared_ptr<std::vector<Json>> arr_;
  std::shared_ptr<std::map<std::string, Json>> obj_;
};

}  // namespace kvs
