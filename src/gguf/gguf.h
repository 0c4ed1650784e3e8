// GGUF files: reading (memory-mapped, zero-copy, validated) and writing.
//
// Format (versions 2 and 3; all integers little-endian):
//   magic "GGUF", u32 version, u64 tensor_count, u64 kv_count,
//   kv_count × (string key, u32 value_type, value),
//   tensor_count × (string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset),
//   padding to `general.alignment` (default 32), tensor data (each tensor at data_start + offset).
// A string is u64 length + bytes (no terminator). An array is u32 element type, u64 count,
// elements.
//
// A file is untrusted input: every count, length, dimension and offset is checked against the
// bytes that exist before anything is allocated, and a failure throws dizuo::Error whose message
// names the problem and the byte offset where it was found.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "core/dtype.h"

namespace dizuo::gguf {

enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
std::string_view ValueTypeName(ValueType type);

inline constexpr uint32_t kDefaultAlignment = 32;

class Value;
struct Array {
  ValueType type = ValueType::kUint8;  // element type (all elements share it)
  std::vector<Value> items;
};

// A metadata value: a scalar of one of GGUF's types, a string, or an array.
class Value {
 public:
  using Storage = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool,
                               std::string, Array, uint64_t, int64_t, double>;
  Value() = default;
  // Each constructor picks the GGUF type of its C++ argument: Value(uint32_t{7}) is a kUint32.
  template <typename T>
  explicit Value(T v) : storage_(std::move(v)) {}
  explicit Value(const char* s) : storage_(std::string(s)) {}
  // An array of `type` elements; each item must already hold that type.
  static Value MakeArray(ValueType type, std::vector<Value> items);
  static Value StringArray(const std::vector<std::string>& strings);
  static Value Float32Array(const std::vector<float>& values);
  static Value Int32Array(const std::vector<int32_t>& values);

  ValueType type() const { return static_cast<ValueType>(storage_.index()); }
  bool is_array() const { return type() == ValueType::kArray; }
  bool is_integer() const;
  const Storage& storage() const { return storage_; }

  // Checked conversions; each throws dizuo::Error naming the expected and actual type (or the
  // value that does not fit). `what` names the value in that message (usually its key).
  int64_t AsInt(std::string_view what = "value") const;
  uint64_t AsUInt(std::string_view what = "value") const;
  double AsFloat(std::string_view what = "value") const;  // any numeric type
  bool AsBool(std::string_view what = "value") const;
  const std::string& AsString(std::string_view what = "value") const;
  const Array& AsArray(std::string_view what = "value") const;

  // Human-readable rendering; arrays longer than `max_items` are abbreviated.
  std::string ToString(size_t max_items = 8) const;

  friend bool operator==(const Value&, const Value&) = default;

 private:
  Storage storage_;
};
bool operator==(const Array& a, const Array& b);

struct TensorInfo {
  std::string name;
  DType type = DType::F32;
  std::vector<int64_t> shape;  // GGUF order: shape[0] is the innermost (contiguous) dimension
  uint64_t offset = 0;         // from the start of the data section
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;  // into the mapping; valid while the File lives

  int64_t elements() const;
  std::span<const uint8_t> bytes() const { return {data, static_cast<size_t>(nbytes)}; }
};

// Ordered key/value metadata with lookup by key.
class Metadata {
 public:
  // Throws dizuo::Error on a duplicate key.
  void Add(std::string key, Value value);
  // Inserts or replaces.
  void Set(const std::string& key, Value value);
  bool Remove(const std::string& key);
  const Value* Find(std::string_view key) const;
  const std::vector<std::pair<std::string, Value>>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }

  // Typed lookups: nullopt when the key is absent; dizuo::Error when present with a wrong type.
  std::optional<std::string> GetString(std::string_view key) const;
  std::optional<int64_t> GetInt(std::string_view key) const;
  std::optional<uint64_t> GetUInt(std::string_view key) const;
  std::optional<double> GetFloat(std::string_view key) const;
  std::optional<bool> GetBool(std::string_view key) const;
  const Array* GetArray(std::string_view key) const;

 private:
  std::vector<std::pair<std::string, Value>> entries_;
  std::unordered_map<std::string, size_t> index_;
};

// A parsed GGUF file. Tensor data stays in the mapping (or the caller's buffer) and is not copied.
class File {
 public:
  // Memory-maps and parses `path`. Throws dizuo::Error naming the file and the problem.
  static File Open(const std::string& path);
  // Parses bytes the caller keeps alive for the File's lifetime (tests, fuzzing).
  static File Parse(std::span<const uint8_t> bytes, std::string name = "<memory>");

  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  ~File();

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // file offset of the data section
  uint64_t file_size() const { return bytes_.size(); }
  const Metadata& metadata() const { return metadata_; }
  // Removes metadata keys and frees their values, e.g. a vocabulary's arrays once a tokenizer has
  // been built from them (Gemma 3's 262,144-token arrays take 32 MB parsed); they then read as
  // absent. Keys that are not present are ignored.
  void DropMetadata(std::initializer_list<std::string_view> keys);
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* FindTensor(std::string_view name) const;
  // Drops the whole memory pages within [data, data + size) of the file's mapping from the
  // process (madvise MADV_DONTNEED): its resident memory shrinks, and the bytes are read again
  // from the file if anything touches them. For data a backend has copied (weights repacked at
  // load). Nothing happens for files parsed from memory or for ranges outside the mapping.
  void ReleasePages(const void* data, uint64_t size) const;

 private:
  File() = default;
  struct Mapping;
  std::unique_ptr<Mapping> mapping_;
  std::span<const uint8_t> bytes_;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  Metadata metadata_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

// Builds a GGUF file. Tensors are laid out in insertion order at `general.alignment`.
class Writer {
 public:
  explicit Writer(uint32_t version = 3) : version_(version) {}
  Metadata& metadata() { return metadata_; }
  // Sets a metadata key (inserting or replacing).
  void Set(const std::string& key, Value value) { metadata_.Set(key, std::move(value)); }
  // Adds a tensor; `data` is copied. Its size must match the type and shape.
  void AddTensor(std::string name, DType type, std::vector<int64_t> shape,
                 std::span<const uint8_t> data);
  std::vector<uint8_t> Serialize() const;
  // Writes to `path` (via a temporary file renamed into place). Throws dizuo::Error on I/O failure.
  void WriteFile(const std::string& path) const;

 private:
  struct PendingTensor {
    std::string name;
    DType type;
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;
  };
  uint32_t version_;
  Metadata metadata_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace dizuo::gguf
