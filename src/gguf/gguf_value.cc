// Metadata values: checked conversions, rendering, and the ordered key/value store.
#include <cmath>
#include <limits>
#include <type_traits>

#include "core/error.h"
#include "gguf/gguf.h"

namespace dizuo::gguf {

std::string_view ValueTypeName(ValueType type) {
  switch (type) {
    case ValueType::kUint8:
      return "uint8";
    case ValueType::kInt8:
      return "int8";
    case ValueType::kUint16:
      return "uint16";
    case ValueType::kInt16:
      return "int16";
    case ValueType::kUint32:
      return "uint32";
    case ValueType::kInt32:
      return "int32";
    case ValueType::kFloat32:
      return "float32";
    case ValueType::kBool:
      return "bool";
    case ValueType::kString:
      return "string";
    case ValueType::kArray:
      return "array";
    case ValueType::kUint64:
      return "uint64";
    case ValueType::kInt64:
      return "int64";
    case ValueType::kFloat64:
      return "float64";
  }
  return "unknown";
}

namespace {

template <typename T>
constexpr bool kIsInteger = std::is_integral_v<T> && !std::is_same_v<T, bool>;

// "string" for scalars, "array of int32" for arrays: what a conversion error reports as found.
std::string DescribeType(const Value& v) {
  if (!v.is_array()) return std::string(ValueTypeName(v.type()));
  return fmt::format("array of {}", ValueTypeName(std::get<Array>(v.storage()).type));
}

void AppendQuoted(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += fmt::format("\\x{:02x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

}  // namespace

Value Value::MakeArray(ValueType type, std::vector<Value> items) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].type() != type) {
      Fail("array of {}: item {} is a {}", ValueTypeName(type), i, ValueTypeName(items[i].type()));
    }
  }
  return Value(Array{type, std::move(items)});
}

Value Value::StringArray(const std::vector<std::string>& strings) {
  std::vector<Value> items;
  items.reserve(strings.size());
  for (const auto& s : strings) items.emplace_back(s);
  return Value(Array{ValueType::kString, std::move(items)});
}

Value Value::Float32Array(const std::vector<float>& values) {
  std::vector<Value> items;
  items.reserve(values.size());
  for (float f : values) items.emplace_back(f);
  return Value(Array{ValueType::kFloat32, std::move(items)});
}

Value Value::Int32Array(const std::vector<int32_t>& values) {
  std::vector<Value> items;
  items.reserve(values.size());
  for (int32_t v : values) items.emplace_back(v);
  return Value(Array{ValueType::kInt32, std::move(items)});
}

bool Value::is_integer() const {
  return std::visit([](const auto& v) { return kIsInteger<std::decay_t<decltype(v)>>; }, storage_);
}

int64_t Value::AsInt(std::string_view what) const {
  return std::visit(
      [&](const auto& v) -> int64_t {
        using T = std::decay_t<decltype(v)>;
        if constexpr (!kIsInteger<T>) {
          Fail("{}: expected an integer, found {}", what, DescribeType(*this));
        } else {
          if constexpr (std::is_same_v<T, uint64_t>) {
            if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
              Fail("{}: value {} does not fit in a signed 64-bit integer", what, v);
            }
          }
          return static_cast<int64_t>(v);
        }
      },
      storage_);
}

uint64_t Value::AsUInt(std::string_view what) const {
  return std::visit(
      [&](const auto& v) -> uint64_t {
        using T = std::decay_t<decltype(v)>;
        if constexpr (!kIsInteger<T>) {
          Fail("{}: expected an integer, found {}", what, DescribeType(*this));
        } else {
          if constexpr (std::is_signed_v<T>) {
            if (v < 0) Fail("{}: expected a non-negative integer, found {}", what, v);
          }
          return static_cast<uint64_t>(v);
        }
      },
      storage_);
}

double Value::AsFloat(std::string_view what) const {
  return std::visit(
      [&](const auto& v) -> double {
        using T = std::decay_t<decltype(v)>;
        if constexpr (kIsInteger<T> || std::is_floating_point_v<T>) {
          return static_cast<double>(v);
        } else {
          Fail("{}: expected a number, found {}", what, DescribeType(*this));
        }
      },
      storage_);
}

bool Value::AsBool(std::string_view what) const {
  if (const bool* b = std::get_if<bool>(&storage_)) return *b;
  Fail("{}: expected a bool, found {}", what, DescribeType(*this));
}

const std::string& Value::AsString(std::string_view what) const {
  if (const std::string* s = std::get_if<std::string>(&storage_)) return *s;
  Fail("{}: expected a string, found {}", what, DescribeType(*this));
}

const Array& Value::AsArray(std::string_view what) const {
  if (const Array* a = std::get_if<Array>(&storage_)) return *a;
  Fail("{}: expected an array, found {}", what, DescribeType(*this));
}

std::string Value::ToString(size_t max_items) const {
  std::string out;
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          AppendQuoted(out, v);
        } else if constexpr (std::is_same_v<T, Array>) {
          out += '[';
          const size_t shown = std::min(max_items, v.items.size());
          for (size_t i = 0; i < shown; ++i) {
            if (i > 0) out += ", ";
            out += v.items[i].ToString(max_items);
          }
          if (shown < v.items.size()) {
            out += fmt::format("{}... ({} items)", shown > 0 ? ", " : "", v.items.size());
          }
          out += ']';
        } else if constexpr (std::is_same_v<T, bool>) {
          out += v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
          out += fmt::format("{}", static_cast<int>(v));
        } else {
          out += fmt::format("{}", v);
        }
      },
      storage_);
  return out;
}

bool operator==(const Array& a, const Array& b) { return a.type == b.type && a.items == b.items; }

int64_t TensorInfo::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void Metadata::Add(std::string key, Value value) {
  if (index_.contains(key)) Fail("duplicate metadata key '{}'", key);
  index_.emplace(key, entries_.size());
  entries_.emplace_back(std::move(key), std::move(value));
}

void Metadata::Set(const std::string& key, Value value) {
  if (auto it = index_.find(key); it != index_.end()) {
    entries_[it->second].second = std::move(value);
    return;
  }
  index_.emplace(key, entries_.size());
  entries_.emplace_back(key, std::move(value));
}

bool Metadata::Remove(const std::string& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  const size_t removed = it->second;
  entries_.erase(entries_.begin() + static_cast<ptrdiff_t>(removed));
  index_.erase(it);
  for (auto& [k, i] : index_) {
    if (i > removed) --i;
  }
  return true;
}

const Value* Metadata::Find(std::string_view key) const {
  auto it = index_.find(std::string(key));
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

std::optional<std::string> Metadata::GetString(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return std::nullopt;
  return v->AsString(key);
}

std::optional<int64_t> Metadata::GetInt(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return std::nullopt;
  return v->AsInt(key);
}

std::optional<uint64_t> Metadata::GetUInt(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return std::nullopt;
  return v->AsUInt(key);
}

std::optional<double> Metadata::GetFloat(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return std::nullopt;
  return v->AsFloat(key);
}

std::optional<bool> Metadata::GetBool(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return std::nullopt;
  return v->AsBool(key);
}

const Array* Metadata::GetArray(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return nullptr;
  return &v->AsArray(key);
}

}  // namespace dizuo::gguf
