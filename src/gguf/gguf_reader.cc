// GGUF reader: memory-maps a file and validates every count, length and offset against the bytes
// that exist before using or allocating anything from it.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>
#include <type_traits>

#include <fmt/ranges.h>

#include "core/error.h"
#include "gguf/gguf.h"
#include "gguf/gguf_format.h"

namespace dizuo::gguf {

// A read-only private mapping of a whole file; unmapped on destruction.
struct File::Mapping {
  void* address = nullptr;
  size_t size = 0;

  Mapping(void* a, size_t s) : address(a), size(s) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (address != nullptr) munmap(address, size);
  }
};

namespace {

// Closes a file descriptor on scope exit.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() { close(fd_); }

 private:
  int fd_;
};

// Sequential little-endian reads over untrusted bytes. Every failure names the file and the byte
// offset where the problem was found.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& name) : bytes_(bytes), name_(name) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }

  template <typename... Args>
  [[noreturn]] void FailAt(uint64_t offset, fmt::format_string<Args...> format,
                           Args&&... args) const {
    Fail("{}: {} (at byte offset {})", name_, fmt::format(format, std::forward<Args>(args)...),
         offset);
  }

  // `what` names the item being read, for error messages: a string, or a callable returning one
  // (so that the successful path formats nothing).
  template <typename What>
  static std::string Describe(const What& what) {
    if constexpr (std::is_invocable_v<What>) {
      return what();
    } else {
      return std::string(what);
    }
  }

  // Throws unless `n` more bytes exist.
  template <typename What>
  void Need(uint64_t n, const What& what) const {
    if (n > remaining()) {
      FailAt(pos_, "truncated file: {} needs {} bytes, only {} remain", Describe(what), n,
             remaining());
    }
  }

  template <typename T, typename What>
  T Read(const What& what) {
    Need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  template <typename What>
  std::string ReadString(const What& what) {
    const uint64_t at = pos_;
    const auto length = Read<uint64_t>([&] { return "length of " + Describe(what); });
    if (length > remaining()) {
      FailAt(at, "truncated file or absurd string length: {} has length {}, only {} bytes remain",
             Describe(what), length, remaining());
    }
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), length);
    pos_ += length;
    return s;
  }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& name_;
  uint64_t pos_ = 0;
};

// The fewest bytes one serialized value of `type` can take.
uint64_t MinEncodedSize(ValueType type) {
  switch (type) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool:
      return 1;
    case ValueType::kUint16:
    case ValueType::kInt16:
      return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32:
      return 4;
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64:
    case ValueType::kString:
      return 8;
    case ValueType::kArray:
      return 4 + 8;
  }
  return 1;
}

class Parser {
 public:
  Parser(std::span<const uint8_t> bytes, const std::string& name) : in_(bytes, name) {}

  template <typename What>
  ValueType ReadValueType(const What& what) {
    const uint64_t at = in_.pos();
    const auto id = in_.Read<uint32_t>(what);
    if (!IsValidValueType(id)) {
      in_.FailAt(at, "{}: unknown value type {}", Cursor::Describe(what), id);
    }
    return static_cast<ValueType>(id);
  }

  Value ReadValue(ValueType type, const std::string& key, int depth) {
    switch (type) {
      case ValueType::kUint8:
        return Value(in_.Read<uint8_t>([&] { return ValueContext(key, type); }));
      case ValueType::kInt8:
        return Value(in_.Read<int8_t>([&] { return ValueContext(key, type); }));
      case ValueType::kUint16:
        return Value(in_.Read<uint16_t>([&] { return ValueContext(key, type); }));
      case ValueType::kInt16:
        return Value(in_.Read<int16_t>([&] { return ValueContext(key, type); }));
      case ValueType::kUint32:
        return Value(in_.Read<uint32_t>([&] { return ValueContext(key, type); }));
      case ValueType::kInt32:
        return Value(in_.Read<int32_t>([&] { return ValueContext(key, type); }));
      case ValueType::kFloat32:
        return Value(in_.Read<float>([&] { return ValueContext(key, type); }));
      case ValueType::kUint64:
        return Value(in_.Read<uint64_t>([&] { return ValueContext(key, type); }));
      case ValueType::kInt64:
        return Value(in_.Read<int64_t>([&] { return ValueContext(key, type); }));
      case ValueType::kFloat64:
        return Value(in_.Read<double>([&] { return ValueContext(key, type); }));
      case ValueType::kBool: {
        const uint64_t at = in_.pos();
        const auto b = in_.Read<uint8_t>([&] { return ValueContext(key, type); });
        if (b > 1) in_.FailAt(at, "key '{}': invalid bool value {} (must be 0 or 1)", key, b);
        return Value(b == 1);
      }
      case ValueType::kString:
        return Value(in_.ReadString([&] { return ValueContext(key, type); }));
      case ValueType::kArray:
        return ReadArray(key, depth);
    }
    DZ_ASSERT(false);
    return Value();
  }

  Value ReadArray(const std::string& key, int depth) {
    const uint64_t at = in_.pos();
    if (depth >= kMaxArrayDepth) {
      in_.FailAt(at, "key '{}': arrays nested deeper than {} levels", key, kMaxArrayDepth);
    }
    const ValueType element_type =
        ReadValueType([&] { return fmt::format("element type of array '{}'", key); });
    const auto count =
        in_.Read<uint64_t>([&] { return fmt::format("element count of array '{}'", key); });
    const uint64_t min_size = MinEncodedSize(element_type);
    if (count > in_.remaining() / min_size) {
      in_.FailAt(at,
                 "truncated file or absurd array count: array '{}' claims {} {} elements (at "
                 "least {} bytes each), only {} bytes remain",
                 key, count, ValueTypeName(element_type), min_size, in_.remaining());
    }
    Array array;
    array.type = element_type;
    array.items.reserve(count);
    for (uint64_t i = 0; i < count; ++i) {
      array.items.push_back(ReadValue(element_type, key, depth + 1));
    }
    return Value(std::move(array));
  }

  void ParseHeader(uint32_t& version, uint64_t& n_tensors, uint64_t& n_kv) {
    if (in_.remaining() < kHeaderSize) {
      in_.FailAt(0, "file too small ({} bytes): a GGUF header takes {} bytes", in_.remaining(),
                 kHeaderSize);
    }
    const auto magic = in_.Read<std::array<uint8_t, 4>>("magic");
    if (std::memcmp(magic.data(), kMagic, 4) != 0) {
      in_.FailAt(0, "bad magic: expected \"GGUF\" (47 47 55 46), found {:02x} {:02x} {:02x} {:02x}",
                 magic[0], magic[1], magic[2], magic[3]);
    }
    version = in_.Read<uint32_t>("version");
    if (version != 2 && version != 3) {
      const uint32_t swapped = __builtin_bswap32(version);
      in_.FailAt(4, "unsupported GGUF version {} (supported: 2, 3){}", version,
                 swapped == 2 || swapped == 3 ? "; this looks like a big-endian file" : "");
    }
    n_tensors = in_.Read<uint64_t>("tensor count");
    n_kv = in_.Read<uint64_t>("key/value count");
    if (n_kv > in_.remaining() / kMinKeyValueSize) {
      in_.FailAt(16,
                 "absurd key/value count {}: the {} bytes after the header hold at most {} "
                 "key/value pairs",
                 n_kv, in_.remaining(), in_.remaining() / kMinKeyValueSize);
    }
    if (n_tensors > in_.remaining() / kMinTensorInfoSize) {
      in_.FailAt(8,
                 "absurd tensor count {}: the {} bytes after the header hold at most {} tensor "
                 "infos",
                 n_tensors, in_.remaining(), in_.remaining() / kMinTensorInfoSize);
    }
  }

  void ParseMetadata(uint64_t n_kv, Metadata& metadata) {
    for (uint64_t i = 0; i < n_kv; ++i) {
      const uint64_t at = in_.pos();
      std::string key = in_.ReadString([&] { return fmt::format("key of key/value pair #{}", i); });
      if (key.empty()) in_.FailAt(at, "empty key in key/value pair #{}", i);
      if (!IsValidUtf8(key)) in_.FailAt(at, "key of key/value pair #{} is not valid UTF-8", i);
      if (metadata.Find(key) != nullptr) in_.FailAt(at, "duplicate key '{}'", key);
      const ValueType type =
          ReadValueType([&] { return fmt::format("value type of key '{}'", key); });
      Value value = ReadValue(type, key, 0);
      metadata.Add(std::move(key), std::move(value));
    }
  }

  TensorInfo ParseTensorInfo(uint64_t i) {
    const uint64_t at = in_.pos();
    TensorInfo t;
    t.name = in_.ReadString([&] { return fmt::format("name of tensor #{}", i); });
    if (t.name.empty()) in_.FailAt(at, "tensor #{} has an empty name", i);
    if (!IsValidUtf8(t.name)) in_.FailAt(at, "name of tensor #{} is not valid UTF-8", i);
    const uint64_t dims_at = in_.pos();
    const auto n_dims =
        in_.Read<uint32_t>([&] { return fmt::format("n_dims of tensor '{}'", t.name); });
    if (n_dims == 0 || n_dims > kMaxDims) {
      in_.FailAt(dims_at, "tensor '{}': n_dims {} out of range (1 to {})", t.name, n_dims,
                 kMaxDims);
    }
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim_at = in_.pos();
      const auto dim =
          in_.Read<uint64_t>([&] { return fmt::format("shape of tensor '{}'", t.name); });
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        in_.FailAt(dim_at, "tensor '{}': negative dimension {} ({})", t.name, d,
                   static_cast<int64_t>(dim));
      }
      if (dim == 0) in_.FailAt(dim_at, "tensor '{}': dimension {} is zero", t.name, d);
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    const uint64_t type_at = in_.pos();
    const auto type_id =
        in_.Read<uint32_t>([&] { return fmt::format("type of tensor '{}'", t.name); });
    const std::optional<DTypeTraits> traits = FindDType(type_id);
    if (!traits) {
      in_.FailAt(type_at, "tensor '{}': unknown or unsupported tensor type {}", t.name, type_id);
    }
    t.type = traits->type;
    t.offset =
        in_.Read<uint64_t>([&] { return fmt::format("data offset of tensor '{}'", t.name); });

    uint64_t elements = 1;
    for (int64_t d : t.shape) {
      if (__builtin_mul_overflow(elements, static_cast<uint64_t>(d), &elements) ||
          elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        in_.FailAt(at, "tensor '{}': element count overflows (shape {})", t.name,
                   fmt::join(t.shape, " x "));
      }
    }
    const auto block = static_cast<uint64_t>(traits->block_size);
    if (static_cast<uint64_t>(t.shape[0]) % block != 0) {
      in_.FailAt(at, "tensor '{}': row size {} is not a multiple of the {} block size {}", t.name,
                 t.shape[0], traits->name, block);
    }
    const uint64_t rows = elements / static_cast<uint64_t>(t.shape[0]);
    const std::optional<uint64_t> row_bytes = RowBytes(t.type, static_cast<uint64_t>(t.shape[0]));
    if (!row_bytes || __builtin_mul_overflow(*row_bytes, rows, &t.nbytes)) {
      in_.FailAt(at, "tensor '{}': data size overflows (shape {}, type {})", t.name,
                 fmt::join(t.shape, " x "), traits->name);
    }
    return t;
  }

  Cursor& cursor() { return in_; }

 private:
  static std::string ValueContext(const std::string& key, ValueType type) {
    return fmt::format("value of key '{}' ({})", key, ValueTypeName(type));
  }

  Cursor in_;
};

uint64_t ParseAlignment(const Metadata& metadata, const std::string& name) {
  const Value* v = metadata.Find(kAlignmentKey);
  if (v == nullptr) return kDefaultAlignment;
  if (!v->is_integer()) {
    Fail("{}: bad alignment: {} must be an integer, found {}", name, kAlignmentKey,
         ValueTypeName(v->type()));
  }
  const bool negative = v->type() != ValueType::kUint64 && v->AsInt() < 0;
  const uint64_t a = negative ? 0 : v->AsUInt();
  if (negative || a == 0 || (a & (a - 1)) != 0) {
    Fail("{}: bad alignment: {} must be a nonzero power of two, found {}", name, kAlignmentKey,
         v->ToString());
  }
  return a;
}

}  // namespace

File File::Parse(std::span<const uint8_t> bytes, std::string name) {
  File file;
  file.path_ = std::move(name);
  file.bytes_ = bytes;
  Parser parser(bytes, file.path_);
  Cursor& in = parser.cursor();

  uint64_t n_tensors = 0;
  uint64_t n_kv = 0;
  parser.ParseHeader(file.version_, n_tensors, n_kv);
  parser.ParseMetadata(n_kv, file.metadata_);
  file.alignment_ = ParseAlignment(file.metadata_, file.path_);

  if (n_tensors > in.remaining() / kMinTensorInfoSize) {
    in.FailAt(in.pos(),
              "truncated file or absurd tensor count: {} tensor infos do not fit in the {} bytes "
              "that remain",
              n_tensors, in.remaining());
  }
  file.tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const uint64_t at = in.pos();
    TensorInfo t = parser.ParseTensorInfo(i);
    if (!file.tensor_index_.emplace(t.name, file.tensors_.size()).second) {
      in.FailAt(at, "duplicate tensor name '{}'", t.name);
    }
    file.tensors_.push_back(std::move(t));
  }

  // The data section starts at the first aligned offset after the tensor infos. A file without
  // tensors may end before it.
  const uint64_t a = file.alignment_;
  const uint64_t infos_end = in.pos();
  file.data_offset_ = infos_end + (a - infos_end % a) % a;
  const uint64_t size = bytes.size();
  for (TensorInfo& t : file.tensors_) {
    if (t.offset % a != 0) {
      Fail("{}: tensor '{}': data offset {} is not a multiple of the alignment {}", file.path_,
           t.name, t.offset, a);
    }
    uint64_t begin = 0;
    uint64_t end = 0;
    if (__builtin_add_overflow(file.data_offset_, t.offset, &begin) ||
        __builtin_add_overflow(begin, t.nbytes, &end) || end > size) {
      Fail(
          "{}: truncated file: data of tensor '{}' ({} bytes at data offset {}) extends past the "
          "end of the file ({} bytes, data section at {})",
          file.path_, t.name, t.nbytes, t.offset, size, file.data_offset_);
    }
    t.data = bytes.data() + begin;
  }

  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(file.tensors_.size());
  for (const TensorInfo& t : file.tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* x, const TensorInfo* y) { return x->offset < y->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& prev = *by_offset[i - 1];
    const TensorInfo& next = *by_offset[i];
    if (prev.offset + prev.nbytes > next.offset) {
      Fail("{}: overlapping tensors: '{}' [{}, {}) and '{}' [{}, {}) in the data section",
           file.path_, prev.name, prev.offset, prev.offset + prev.nbytes, next.name, next.offset,
           next.offset + next.nbytes);
    }
  }
  return file;
}

File File::Open(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Fail("{}: cannot open: {}", path, std::strerror(errno));
  FdCloser closer(fd);
  struct stat st {};
  if (fstat(fd, &st) != 0) Fail("{}: cannot stat: {}", path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) Fail("{}: cannot read: not a regular file", path);
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < kHeaderSize) {
    Fail("{}: file too small ({} bytes): a GGUF header takes {} bytes (at byte offset 0)", path,
         size, kHeaderSize);
  }
  void* address = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (address == MAP_FAILED) Fail("{}: cannot memory-map: {}", path, std::strerror(errno));
  auto mapping = std::make_unique<Mapping>(address, size);
  File file = Parse({static_cast<const uint8_t*>(address), size}, path);
  file.mapping_ = std::move(mapping);
  // The header, metadata and tensor infos are parsed into the File's own strings and arrays; their
  // pages are not read again. A large vocabulary makes them several MiB (Gemma 3: 6 MiB), which
  // otherwise stay in the process's resident memory.
  file.ReleasePages(address, std::min(file.data_offset_, size));
  return file;
}

File::File(File&&) noexcept = default;
File& File::operator=(File&&) noexcept = default;
File::~File() = default;

void File::DropMetadata(std::initializer_list<std::string_view> keys) {
  for (std::string_view key : keys) metadata_.Remove(std::string(key));
}

void File::ReleasePages(const void* data, uint64_t size) const {
  if (mapping_ == nullptr) return;
  const auto base = reinterpret_cast<uintptr_t>(mapping_->address);
  const auto begin = reinterpret_cast<uintptr_t>(data);
  if (begin < base || size > mapping_->size || begin - base > mapping_->size - size) return;
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = (begin + page - 1) / page * page;
  const uintptr_t last = (begin + size) / page * page;
  if (first >= last) return;
  // Advice only: a failure leaves the pages resident, which is harmless. MADV_NOHUGEPAGE first
  // gives the range a mapping of its own that the kernel will not map as part of a 2 MB page: a
  // later fault on a neighbouring tensor (a norm weight) otherwise maps the whole huge page of
  // the page cache around it again (llama 1b Q4_0: 27 MiB of released weights were resident
  // again after a few tokens).
  void* p = reinterpret_cast<void*>(first);
  madvise(p, last - first, MADV_NOHUGEPAGE);
  madvise(p, last - first, MADV_DONTNEED);
}

const TensorInfo* File::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace dizuo::gguf
