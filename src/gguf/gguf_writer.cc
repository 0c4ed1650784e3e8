// GGUF writer: serializes metadata and tensors (versions 2 and 3), padding every tensor's data to
// `general.alignment`. It refuses anything the reader would reject, so its output always reads
// back.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <type_traits>

#include "core/error.h"
#include "gguf/gguf.h"
#include "gguf/gguf_format.h"

namespace dizuo::gguf {
namespace {

class ByteSink {
 public:
  template <typename T>
  void Put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    Append(&v, sizeof(T));
  }
  void PutBytes(std::span<const uint8_t> bytes) { Append(bytes.data(), bytes.size()); }
  void PutString(const std::string& s) {
    Put<uint64_t>(s.size());
    Append(s.data(), s.size());
  }
  void PadTo(uint64_t alignment) {
    out_.resize(out_.size() + (alignment - out_.size() % alignment) % alignment, 0);
  }

  void PutValue(const Value& value, const std::string& key, int depth) {
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string>) {
            PutString(v);
          } else if constexpr (std::is_same_v<T, Array>) {
            if (depth >= kMaxArrayDepth) {
              Fail("GGUF writer: key '{}': arrays nested deeper than {} levels", key,
                   kMaxArrayDepth);
            }
            Put<uint32_t>(static_cast<uint32_t>(v.type));
            Put<uint64_t>(v.items.size());
            for (const Value& item : v.items) {
              if (item.type() != v.type) {
                Fail("GGUF writer: key '{}': array of {} holds a {}", key, ValueTypeName(v.type),
                     ValueTypeName(item.type()));
              }
              PutValue(item, key, depth + 1);
            }
          } else if constexpr (std::is_same_v<T, bool>) {
            Put<uint8_t>(v ? 1 : 0);
          } else {
            Put<T>(v);
          }
        },
        value.storage());
  }

  std::vector<uint8_t> Take() { return std::move(out_); }

 private:
  void Append(const void* p, size_t n) {
    if (n == 0) return;
    const size_t old = out_.size();
    out_.resize(old + n);
    std::memcpy(out_.data() + old, p, n);
  }

  std::vector<uint8_t> out_;
};

uint64_t WriterAlignment(const Metadata& metadata) {
  const Value* v = metadata.Find(kAlignmentKey);
  if (v == nullptr) return kDefaultAlignment;
  if (!v->is_integer() || (v->type() != ValueType::kUint64 && v->AsInt() < 0)) {
    Fail("GGUF writer: {} must be a nonzero power of two, found {}", kAlignmentKey, v->ToString());
  }
  const uint64_t a = v->AsUInt(kAlignmentKey);
  if (a == 0 || (a & (a - 1)) != 0) {
    Fail("GGUF writer: {} must be a nonzero power of two, found {}", kAlignmentKey, a);
  }
  return a;
}

}  // namespace

void Writer::AddTensor(std::string name, DType type, std::vector<int64_t> shape,
                       std::span<const uint8_t> data) {
  if (name.empty()) Fail("GGUF writer: tensor with an empty name");
  if (!IsValidUtf8(name)) Fail("GGUF writer: tensor name is not valid UTF-8");
  for (const PendingTensor& t : tensors_) {
    if (t.name == name) Fail("GGUF writer: duplicate tensor name '{}'", name);
  }
  if (shape.empty() || shape.size() > kMaxDims) {
    Fail("GGUF writer: tensor '{}': {} dimensions (must be 1 to {})", name, shape.size(), kMaxDims);
  }
  uint64_t rows = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] <= 0) Fail("GGUF writer: tensor '{}': dimension {} is {}", name, d, shape[d]);
    if (d > 0 && __builtin_mul_overflow(rows, static_cast<uint64_t>(shape[d]), &rows)) {
      Fail("GGUF writer: tensor '{}': element count overflows", name);
    }
  }
  const std::optional<uint64_t> row_bytes = RowBytes(type, static_cast<uint64_t>(shape[0]));
  if (!row_bytes) {
    Fail("GGUF writer: tensor '{}': row size {} is not a multiple of the {} block size {}", name,
         shape[0], Name(type), Traits(type).block_size);
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(*row_bytes, rows, &nbytes) || nbytes != data.size()) {
    Fail("GGUF writer: tensor '{}': {} bytes given, its type and shape need {}", name, data.size(),
         *row_bytes * rows);
  }
  tensors_.push_back({std::move(name), type, std::move(shape), {data.begin(), data.end()}});
}

std::vector<uint8_t> Writer::Serialize() const {
  if (version_ != 2 && version_ != 3) {
    Fail("GGUF writer: unsupported GGUF version {} (supported: 2, 3)", version_);
  }
  const uint64_t alignment = WriterAlignment(metadata_);

  ByteSink out;
  out.PutBytes(kMagic);
  out.Put<uint32_t>(version_);
  out.Put<uint64_t>(tensors_.size());
  out.Put<uint64_t>(metadata_.size());
  for (const auto& [key, value] : metadata_.entries()) {
    if (key.empty()) Fail("GGUF writer: empty metadata key");
    if (!IsValidUtf8(key)) Fail("GGUF writer: metadata key is not valid UTF-8");
    out.PutString(key);
    out.Put<uint32_t>(static_cast<uint32_t>(value.type()));
    out.PutValue(value, key, 0);
  }
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    out.PutString(t.name);
    out.Put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape) out.Put<uint64_t>(static_cast<uint64_t>(d));
    out.Put<uint32_t>(static_cast<uint32_t>(t.type));
    out.Put<uint64_t>(offset);
    offset += t.data.size();
    offset += (alignment - offset % alignment) % alignment;
  }
  out.PadTo(alignment);
  for (const PendingTensor& t : tensors_) {
    out.PutBytes(t.data);
    out.PadTo(alignment);
  }
  return out.Take();
}

void Writer::WriteFile(const std::string& path) const {
  const std::vector<uint8_t> bytes = Serialize();
  std::string temp = path + ".tmp.XXXXXX";
  const int fd = mkstemp(temp.data());
  if (fd < 0) Fail("{}: cannot create a temporary file: {}", path, std::strerror(errno));
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      close(fd);
      unlink(temp.c_str());
      Fail("{}: write failed: {}", path, std::strerror(err));
    }
    written += static_cast<size_t>(n);
  }
  // mkstemp creates the file 0600; a model file is normally readable by everyone. (Reading the
  // umask would mean changing it, which races with other threads.)
  fchmod(fd, 0644);
  const bool synced = fsync(fd) == 0;
  const int sync_err = errno;
  if (close(fd) != 0 || !synced) {
    const int err = synced ? errno : sync_err;
    unlink(temp.c_str());
    Fail("{}: write failed: {}", path, std::strerror(err));
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(temp.c_str());
    Fail("{}: cannot rename the temporary file into place: {}", path, std::strerror(err));
  }
}

}  // namespace dizuo::gguf
