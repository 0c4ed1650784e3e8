#include "gguf/gguf.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "core/error.h"
#include "test_paths.h"

namespace dizuo::gguf {
namespace {

using ::testing::HasSubstr;

std::vector<uint8_t> Bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 31);
  return v;
}

// Every scalar type with its edge values, strings (empty, non-ASCII), arrays of every element
// type, nested and empty arrays.
void AddEveryValueType(Metadata& m) {
  m.Add("u8.min", Value(uint8_t{0}));
  m.Add("u8.max", Value(uint8_t{255}));
  m.Add("i8.min", Value(int8_t{-128}));
  m.Add("i8.max", Value(int8_t{127}));
  m.Add("u16.max", Value(uint16_t{65535}));
  m.Add("i16.min", Value(int16_t{-32768}));
  m.Add("u32.max", Value(std::numeric_limits<uint32_t>::max()));
  m.Add("i32.min", Value(std::numeric_limits<int32_t>::min()));
  m.Add("f32.tiny", Value(std::numeric_limits<float>::denorm_min()));
  m.Add("f32.inf", Value(-std::numeric_limits<float>::infinity()));
  m.Add("f32.max", Value(std::numeric_limits<float>::max()));
  m.Add("bool.true", Value(true));
  m.Add("bool.false", Value(false));
  m.Add("str.empty", Value(std::string()));
  m.Add("str.utf8", Value("héllo ▁世界 🦙"));
  m.Add("str.nul", Value(std::string("a\0b", 3)));
  m.Add("u64.max", Value(std::numeric_limits<uint64_t>::max()));
  m.Add("i64.min", Value(std::numeric_limits<int64_t>::min()));
  m.Add("f64.eps", Value(std::numeric_limits<double>::epsilon()));
  m.Add("f64.neg", Value(-1.0e308));
  m.Add("arr.u8", Value::MakeArray(ValueType::kUint8, {Value(uint8_t{1}), Value(uint8_t{255})}));
  m.Add("arr.i8", Value::MakeArray(ValueType::kInt8, {Value(int8_t{-1})}));
  m.Add("arr.u16", Value::MakeArray(ValueType::kUint16, {Value(uint16_t{7})}));
  m.Add("arr.i16", Value::MakeArray(ValueType::kInt16, {Value(int16_t{-7})}));
  m.Add("arr.u32", Value::MakeArray(ValueType::kUint32, {Value(uint32_t{1}), Value(uint32_t{2})}));
  m.Add("arr.i32", Value::Int32Array({-1, 0, 1, std::numeric_limits<int32_t>::max()}));
  m.Add("arr.f32", Value::Float32Array({0.5f, -0.0f, 1e-30f}));
  m.Add("arr.bool", Value::MakeArray(ValueType::kBool, {Value(true), Value(false)}));
  m.Add("arr.str", Value::StringArray({"", "a", "▁the", "<0x0A>"}));
  m.Add("arr.u64", Value::MakeArray(ValueType::kUint64, {Value(uint64_t{1} << 40)}));
  m.Add("arr.i64", Value::MakeArray(ValueType::kInt64, {Value(int64_t{-5})}));
  m.Add("arr.f64", Value::MakeArray(ValueType::kFloat64, {Value(3.25)}));
  m.Add("arr.empty", Value::MakeArray(ValueType::kFloat32, {}));
  m.Add("arr.nested",
        Value::MakeArray(ValueType::kArray,
                         {Value::Int32Array({1, 2}), Value::Int32Array({}),
                          Value::MakeArray(ValueType::kArray, {Value::StringArray({"deep"})})}));
  m.Add("arr.empty_nested", Value::MakeArray(ValueType::kArray, {}));
}

struct TestTensor {
  std::string name;
  DType type;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

std::vector<TestTensor> SomeTensors() {
  return {
      {"f32.vector", DType::F32, {7}, Bytes(7 * 4, 1)},
      {"f16.matrix", DType::F16, {3, 5}, Bytes(3 * 5 * 2, 2)},
      {"q8_0.matrix", DType::Q8_0, {64, 3}, Bytes(2 * 34 * 3, 3)},
      {"q4_K.4d", DType::Q4_K, {256, 2, 1, 2}, Bytes(144 * 4, 4)},
      {"i8.odd", DType::I8, {1, 1, 3}, Bytes(3, 5)},
      {"bf16.last", DType::BF16, {9}, Bytes(18, 6)},
  };
}

void ExpectRoundTrip(uint32_t version, std::optional<uint32_t> alignment) {
  Writer writer(version);
  AddEveryValueType(writer.metadata());
  if (alignment) writer.Set("general.alignment", Value(*alignment));
  const std::vector<TestTensor> tensors = SomeTensors();
  for (const auto& t : tensors) writer.AddTensor(t.name, t.type, t.shape, t.data);
  const std::vector<uint8_t> bytes = writer.Serialize();

  const File file = File::Parse(bytes, "roundtrip.gguf");
  EXPECT_EQ(file.version(), version);
  const uint64_t a = alignment.value_or(kDefaultAlignment);
  EXPECT_EQ(file.alignment(), a);
  EXPECT_EQ(file.data_offset() % a, 0u);
  EXPECT_EQ(file.file_size(), bytes.size());

  // Metadata: same keys, same order, same types and values.
  const auto& want = writer.metadata().entries();
  const auto& got = file.metadata().entries();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].first, want[i].first);
    EXPECT_EQ(got[i].second.type(), want[i].second.type()) << want[i].first;
    EXPECT_TRUE(got[i].second == want[i].second)
        << want[i].first << ": " << got[i].second.ToString();
  }
  EXPECT_TRUE(std::signbit(file.metadata().Find("arr.f32")->AsArray().items[1].AsFloat()));

  ASSERT_EQ(file.tensors().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = file.tensors()[i];
    EXPECT_EQ(t.name, tensors[i].name);
    EXPECT_EQ(t.type, tensors[i].type);
    EXPECT_EQ(t.shape, tensors[i].shape);
    EXPECT_EQ(t.nbytes, tensors[i].data.size());
    EXPECT_EQ(t.offset % a, 0u) << t.name;
    EXPECT_EQ(static_cast<uint64_t>(t.data - bytes.data()), file.data_offset() + t.offset);
    EXPECT_EQ(static_cast<uint64_t>(t.data - bytes.data()) % a, 0u) << t.name;
    EXPECT_TRUE(std::equal(t.bytes().begin(), t.bytes().end(), tensors[i].data.begin(),
                           tensors[i].data.end()))
        << t.name;
    EXPECT_EQ(file.FindTensor(t.name), &t);
  }
  EXPECT_EQ(file.FindTensor("missing"), nullptr);
}

TEST(GgufRoundTrip, Version3DefaultAlignment) { ExpectRoundTrip(3, std::nullopt); }
TEST(GgufRoundTrip, Version2DefaultAlignment) { ExpectRoundTrip(2, std::nullopt); }
TEST(GgufRoundTrip, Version3Alignment64) { ExpectRoundTrip(3, 64); }
TEST(GgufRoundTrip, Version2Alignment8) { ExpectRoundTrip(2, 8); }
TEST(GgufRoundTrip, Alignment1) { ExpectRoundTrip(3, 1); }

TEST(GgufRoundTrip, WriteFileThenOpen) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("dizuo_gguf_test_" + std::to_string(getpid()) + ".gguf");
  Writer writer;
  writer.Set("general.architecture", Value("llama"));
  writer.Set("general.alignment", Value(uint64_t{128}));
  const auto data = Bytes(4 * 10, 9);
  writer.AddTensor("t", DType::F32, {10}, data);
  writer.WriteFile(path.string());
  {
    File file = File::Open(path.string());
    EXPECT_EQ(file.path(), path.string());
    EXPECT_EQ(file.alignment(), 128u);
    EXPECT_EQ(file.metadata().GetString("general.architecture"), "llama");
    const TensorInfo* t = file.FindTensor("t");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % 128, 0u);  // the mapping is page-aligned
    EXPECT_TRUE(std::equal(t->bytes().begin(), t->bytes().end(), data.begin(), data.end()));
    File moved = std::move(file);
    EXPECT_EQ(moved.FindTensor("t")->data, t->data);
  }
  std::filesystem::remove(path);
}

// Pages of t->data .. + nbytes mapped into this process (present in /proc/self/pagemap).
int64_t MappedPages(const TensorInfo& t) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = reinterpret_cast<uintptr_t>(t.data) / page;
  const uintptr_t last = (reinterpret_cast<uintptr_t>(t.data) + t.nbytes - 1) / page;
  const int fd = open("/proc/self/pagemap", O_RDONLY);
  EXPECT_GE(fd, 0);
  std::vector<uint64_t> entries(last - first + 1);
  const ssize_t got = pread(fd, entries.data(), entries.size() * 8, static_cast<off_t>(first * 8));
  close(fd);
  EXPECT_EQ(got, static_cast<ssize_t>(entries.size() * 8));
  int64_t n = 0;
  for (uint64_t e : entries) n += static_cast<int64_t>(e >> 63);
  return n;
}

// Released pages (weights a backend copied) leave the process and come back from the file, with the
// same bytes, when touched again; ranges outside the mapping and files parsed from memory are
// ignored.
TEST(GgufRoundTrip, ReleasedPagesLeaveTheProcessAndReadBack) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("dizuo_gguf_release_" + std::to_string(getpid()) + ".gguf");
  Writer writer;
  writer.Set("general.architecture", Value("llama"));
  std::vector<uint8_t> data(3 << 20);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + i / 4096);
  writer.AddTensor("t", DType::I8, {static_cast<int64_t>(data.size())}, data);
  writer.WriteFile(path.string());
  {
    const File file = File::Open(path.string());
    const TensorInfo* t = file.FindTensor("t");
    ASSERT_NE(t, nullptr);
    EXPECT_TRUE(std::equal(t->bytes().begin(), t->bytes().end(), data.begin(), data.end()));
    const int64_t pages = static_cast<int64_t>(data.size() / sysconf(_SC_PAGESIZE));
    EXPECT_GE(MappedPages(*t), pages);
    file.ReleasePages(t->data, t->nbytes);
    EXPECT_LE(MappedPages(*t), 2) << "only the partial first and last pages stay";
    file.ReleasePages(t->data, uint64_t{1} << 40);  // past the mapping: ignored
    file.ReleasePages(data.data(), data.size());    // not in the mapping: ignored
    EXPECT_TRUE(std::equal(t->bytes().begin(), t->bytes().end(), data.begin(), data.end()));
    EXPECT_GE(MappedPages(*t), pages);
  }
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
  const File parsed = File::Parse(bytes);
  const TensorInfo* t = parsed.FindTensor("t");
  ASSERT_NE(t, nullptr);
  parsed.ReleasePages(t->data, t->nbytes);  // no mapping: nothing happens
  EXPECT_TRUE(std::equal(t->bytes().begin(), t->bytes().end(), data.begin(), data.end()));
  std::filesystem::remove(path);
}

TEST(GgufWriter, WriteFileErrorNamesPath) {
  Writer writer;
  try {
    writer.WriteFile("/nonexistent-dir/x.gguf");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent-dir/x.gguf"));
  }
}

TEST(GgufWriter, RejectsBadTensors) {
  Writer writer;
  const auto data = Bytes(64, 0);
  EXPECT_THROW(writer.AddTensor("", DType::F32, {16}, data), Error);
  EXPECT_THROW(writer.AddTensor("a", DType::F32, {}, data), Error);
  EXPECT_THROW(writer.AddTensor("a", DType::F32, {1, 1, 1, 1, 16}, data), Error);
  EXPECT_THROW(writer.AddTensor("a", DType::F32, {0}, {}), Error);
  EXPECT_THROW(writer.AddTensor("a", DType::F32, {15}, data), Error);   // size mismatch
  EXPECT_THROW(writer.AddTensor("a", DType::Q8_0, {16}, data), Error);  // not a block multiple
  writer.AddTensor("a", DType::F32, {16}, data);
  EXPECT_THROW(writer.AddTensor("a", DType::F32, {16}, data), Error);  // duplicate
  writer.Set("general.alignment", Value(uint32_t{48}));
  EXPECT_THROW(writer.Serialize(), Error);
  writer.Set("general.alignment", Value(int32_t{-32}));
  EXPECT_THROW(writer.Serialize(), Error);
  EXPECT_THROW(Writer(1).Serialize(), Error);
}

TEST(GgufReal, Stories260K) {
  const File file = File::Open((testing::SharedDir() / "models/stories260K.gguf").string());
  EXPECT_EQ(file.version(), 3u);
  EXPECT_EQ(file.tensors().size(), 48u);
  const Metadata& m = file.metadata();
  EXPECT_EQ(m.GetString("general.architecture"), "llama");
  EXPECT_EQ(m.GetString("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(m.GetUInt("llama.block_count"), 5u);
  EXPECT_EQ(m.GetInt("llama.embedding_length"), 64);
  EXPECT_EQ(m.GetUInt("llama.feed_forward_length"), 172u);
  EXPECT_EQ(m.GetUInt("llama.attention.head_count_kv"), 4u);
  EXPECT_EQ(m.GetUInt("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_NEAR(*m.GetFloat("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-12);
  ASSERT_NE(m.GetArray("tokenizer.ggml.tokens"), nullptr);
  EXPECT_EQ(m.GetArray("tokenizer.ggml.tokens")->items.size(), 512u);
  EXPECT_EQ(m.GetArray("tokenizer.ggml.tokens")->type, ValueType::kString);
  EXPECT_EQ(m.GetArray("tokenizer.ggml.scores")->type, ValueType::kFloat32);
  EXPECT_FALSE(m.GetString("tokenizer.ggml.pre").has_value());

  const TensorInfo* out = file.FindTensor("output.weight");
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->type, DType::F32);
  EXPECT_EQ(out->shape, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(out->nbytes, 64u * 512 * 4);
  EXPECT_EQ(out->elements(), 64 * 512);
  EXPECT_EQ(file.data_offset() + out->offset, 145504u);  // as gguf-py reports it
  // output.weight is stored separately but equals token_embd.weight (shared/README.md).
  const TensorInfo* embd = file.FindTensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_NE(embd->data, out->data);
  EXPECT_EQ(std::memcmp(embd->data, out->data, out->nbytes), 0);
  for (const TensorInfo& t : file.tensors()) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % file.alignment(), 0u) << t.name;
  }
}

TEST(GgufReal, VocabOnlyFile) {
  const File file =
      File::Open((testing::SharedDir() / "testdata/tokenizer/ggml-vocab-gpt-2.gguf").string());
  EXPECT_TRUE(file.tensors().empty());
  const Metadata& m = file.metadata();
  EXPECT_EQ(m.GetString("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(m.GetString("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(m.GetArray("tokenizer.ggml.tokens")->items.size(), 50257u);
  EXPECT_EQ(m.GetArray("tokenizer.ggml.tokens")->items[0].AsString(), "!");
}

TEST(GgufReal, EveryVocabFileParses) {
  for (const char* dir : {"testdata/tokenizer", "testdata/tokenizer-extra"}) {
    for (const auto& entry : std::filesystem::directory_iterator(testing::SharedDir() / dir)) {
      if (entry.path().extension() != ".gguf") continue;
      SCOPED_TRACE(entry.path().string());
      const File file = File::Open(entry.path().string());
      EXPECT_TRUE(file.tensors().empty());
      EXPECT_TRUE(file.metadata().GetString("tokenizer.ggml.model").has_value());
    }
  }
}

// ---- Values and metadata ----

TEST(GgufValue, CheckedConversionsNameKeyAndTypes) {
  Metadata m;
  m.Add("tokenizer.ggml.bos_token_id", Value("1"));
  m.Add("neg", Value(int32_t{-3}));
  m.Add("big", Value(std::numeric_limits<uint64_t>::max()));
  m.Add("ids", Value::Int32Array({1}));
  m.Add("flag", Value(true));
  m.Add("f", Value(0.25f));
  auto message = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "<no error>";
  };
  EXPECT_EQ(message([&] { m.GetInt("tokenizer.ggml.bos_token_id"); }),
            "tokenizer.ggml.bos_token_id: expected an integer, found string");
  EXPECT_EQ(message([&] { m.GetUInt("neg"); }), "neg: expected a non-negative integer, found -3");
  EXPECT_THAT(message([&] { m.GetInt("big"); }), HasSubstr("does not fit"));
  EXPECT_EQ(message([&] { m.GetString("ids"); }), "ids: expected a string, found array of int32");
  EXPECT_EQ(message([&] { m.GetBool("f"); }), "f: expected a bool, found float32");
  EXPECT_EQ(message([&] { m.GetFloat("flag"); }), "flag: expected a number, found bool");
  EXPECT_EQ(message([&] { m.GetArray("flag"); }), "flag: expected an array, found bool");
  EXPECT_EQ(message([&] { m.Add("neg", Value(1)); }), "duplicate metadata key 'neg'");
  EXPECT_EQ(m.GetInt("neg"), -3);
  EXPECT_EQ(m.GetFloat("neg"), -3.0);
  EXPECT_EQ(m.GetFloat("f"), 0.25);
  EXPECT_EQ(m.GetUInt("big"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(m.GetBool("flag"), true);
  EXPECT_EQ(m.GetInt("absent"), std::nullopt);
  EXPECT_EQ(m.GetArray("absent"), nullptr);
  EXPECT_THROW(Value::MakeArray(ValueType::kInt32, {Value(1u)}), Error);
}

TEST(GgufValue, MetadataSetAndRemoveKeepOrderAndIndex) {
  Metadata m;
  m.Add("a", Value(1));
  m.Add("b", Value(2));
  m.Add("c", Value(3));
  m.Set("b", Value(20));
  m.Set("d", Value(4));
  EXPECT_TRUE(m.Remove("a"));
  EXPECT_FALSE(m.Remove("a"));
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m.entries()[0].first, "b");
  EXPECT_EQ(m.GetInt("b"), 20);
  EXPECT_EQ(m.GetInt("c"), 3);
  EXPECT_EQ(m.GetInt("d"), 4);
  EXPECT_EQ(m.Find("a"), nullptr);
}

TEST(GgufValue, ToString) {
  EXPECT_EQ(Value(uint8_t{200}).ToString(), "200");
  EXPECT_EQ(Value(int8_t{-5}).ToString(), "-5");
  EXPECT_EQ(Value(1e-5f).ToString(), "1e-05");
  EXPECT_EQ(Value(true).ToString(), "true");
  EXPECT_EQ(Value("a\"b\n\x01").ToString(), "\"a\\\"b\\n\\x01\"");
  EXPECT_EQ(Value::Int32Array({1, 2, 3}).ToString(), "[1, 2, 3]");
  EXPECT_EQ(Value::Int32Array({1, 2, 3}).ToString(2), "[1, 2, ... (3 items)]");
  EXPECT_EQ(Value::StringArray({"x"}).ToString(0), "[... (1 items)]");
  EXPECT_EQ(ValueTypeName(ValueType::kFloat64), "float64");
  EXPECT_EQ(ValueTypeName(static_cast<ValueType>(99)), "unknown");
}

// ---- Malformed files: each builds bad bytes and checks the error names the problem. ----

// Little-endian GGUF bytes assembled piece by piece, so a test can say exactly what is wrong.
class Raw {
 public:
  template <typename T>
  Raw& Put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    bytes.insert(bytes.end(), p, p + sizeof(T));
    return *this;
  }
  Raw& U32(uint32_t v) { return Put(v); }
  Raw& U64(uint64_t v) { return Put(v); }
  Raw& Str(std::string_view s) {
    U64(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
    return *this;
  }
  Raw& Header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    bytes.insert(bytes.end(), {'G', 'G', 'U', 'F'});
    return U32(version).U64(n_tensors).U64(n_kv);
  }
  Raw& Key(std::string_view key, ValueType type) {
    return Str(key).U32(static_cast<uint32_t>(type));
  }
  Raw& Tensor(std::string_view name, std::vector<uint64_t> shape, uint32_t type, uint64_t offset) {
    Str(name).U32(static_cast<uint32_t>(shape.size()));
    for (uint64_t d : shape) U64(d);
    return U32(type).U64(offset);
  }
  Raw& PadTo(size_t alignment) {
    bytes.resize((bytes.size() + alignment - 1) / alignment * alignment, 0);
    return *this;
  }
  Raw& Zeros(size_t n) {
    bytes.resize(bytes.size() + n, 0);
    return *this;
  }
  std::vector<uint8_t> bytes;
};

constexpr uint32_t kF32 = 0;

std::string ParseError(const std::vector<uint8_t>& bytes) {
  try {
    File::Parse(bytes, "bad.gguf");
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

std::string OpenError(const std::string& path) {
  try {
    File::Open(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

// Every parse error starts with the file name.
#define EXPECT_PARSE_ERROR(bytes, phrase)                      \
  do {                                                         \
    const std::string message = ParseError(bytes);             \
    EXPECT_THAT(message, ::testing::StartsWith("bad.gguf: ")); \
    EXPECT_THAT(message, HasSubstr(phrase));                   \
  } while (0)

// A valid file with one f32 tensor of 16 elements; tests patch it.
std::vector<uint8_t> OneTensorFile() {
  Writer w;
  w.Set("general.architecture", Value("test"));
  w.AddTensor("weight", DType::F32, {16}, Bytes(64, 1));
  return w.Serialize();
}

std::filesystem::path TempPath(const std::string& stem) {
  return std::filesystem::temp_directory_path() / (stem + "_" + std::to_string(getpid()) + ".gguf");
}

TEST(GgufMalformed, FileMissing) {
  const std::string message = OpenError("/nonexistent/model.gguf");
  EXPECT_THAT(message, HasSubstr("/nonexistent/model.gguf: cannot open"));
  EXPECT_THAT(message, HasSubstr("No such file"));
}

TEST(GgufMalformed, FileUnreadable) {
  const std::string dir = std::filesystem::temp_directory_path().string();
  EXPECT_THAT(OpenError(dir), HasSubstr(dir + ": cannot read: not a regular file"));
}

TEST(GgufMalformed, FileTooSmall) {
  EXPECT_PARSE_ERROR(std::vector<uint8_t>{}, "file too small (0 bytes)");
  std::vector<uint8_t> bytes = OneTensorFile();
  bytes.resize(23);
  EXPECT_PARSE_ERROR(bytes, "file too small (23 bytes)");
  const auto path = TempPath("dizuo_small");
  std::ofstream(path, std::ios::binary) << "GGUF";
  EXPECT_THAT(OpenError(path.string()), HasSubstr(path.string() + ": file too small (4 bytes)"));
  std::filesystem::remove(path);
}

TEST(GgufMalformed, BadMagicShowsBytesFound) {
  std::vector<uint8_t> bytes = OneTensorFile();
  std::memcpy(bytes.data(), "GGML", 4);
  EXPECT_PARSE_ERROR(bytes, "bad magic");
  EXPECT_PARSE_ERROR(bytes, "found 47 47 4d 4c");
}

TEST(GgufMalformed, UnsupportedVersion) {
  for (uint32_t version : {0u, 1u, 4u, 0x03000000u}) {
    std::vector<uint8_t> bytes = OneTensorFile();
    std::memcpy(bytes.data() + 4, &version, 4);
    EXPECT_PARSE_ERROR(bytes,
                       fmt::format("unsupported GGUF version {} (supported: 2, 3)", version));
  }
  std::vector<uint8_t> big_endian = OneTensorFile();
  big_endian[4] = 0;
  big_endian[7] = 3;
  EXPECT_PARSE_ERROR(big_endian, "this looks like a big-endian file");
}

TEST(GgufMalformed, TruncatedKey) {
  Raw raw;
  raw.Header(0, 1).U64(40).Zeros(20);
  EXPECT_PARSE_ERROR(raw.bytes, "key of key/value pair #0 has length 40, only 20 bytes remain");
}

TEST(GgufMalformed, TruncatedValue) {
  Raw raw;
  raw.Header(0, 1).Key("count", ValueType::kUint64).U32(7);
  EXPECT_PARSE_ERROR(raw.bytes,
                     "truncated file: value of key 'count' (uint64) needs 8 bytes, only 4 remain");
}

TEST(GgufMalformed, TruncatedArray) {
  Raw raw;
  raw.Header(0, 1).Key("ids", ValueType::kArray).U32(static_cast<uint32_t>(ValueType::kInt32));
  raw.U64(3).U32(1).U32(2);
  EXPECT_PARSE_ERROR(raw.bytes, "array 'ids' claims 3 int32 elements (at least 4 bytes each)");
}

TEST(GgufMalformed, TruncatedTensorInfo) {
  Raw raw;
  raw.Header(1, 1).Key("pad", ValueType::kString).Str(std::string(40, 'x'));
  raw.Tensor("a_long_tensor_name", {16, 16, 16, 16}, kF32, 0);
  raw.bytes.resize(raw.bytes.size() - 30);  // cut inside the third dimension
  EXPECT_PARSE_ERROR(raw.bytes,
                     "truncated file: shape of tensor 'a_long_tensor_name' needs 8 bytes, only 6 "
                     "remain");
}

TEST(GgufMalformed, TruncatedTensorData) {
  std::vector<uint8_t> bytes = OneTensorFile();
  bytes.resize(bytes.size() - 32 - 1);  // drop the padding and the last byte of the data
  EXPECT_PARSE_ERROR(bytes, "truncated file: data of tensor 'weight' (64 bytes at data offset 0)");
}

TEST(GgufMalformed, AbsurdKeyValueCount) {
  Raw raw;
  raw.Header(0, uint64_t{1} << 60).Zeros(100);
  EXPECT_PARSE_ERROR(raw.bytes, "absurd key/value count 1152921504606846976");
}

TEST(GgufMalformed, AbsurdTensorCount) {
  Raw raw;
  raw.Header(~uint64_t{0} / 2, 0).Zeros(100);
  EXPECT_PARSE_ERROR(raw.bytes, "absurd tensor count 9223372036854775807");
  // Plausible against the whole file, impossible against what is left after the metadata.
  Raw late;
  late.Header(3, 1).Key("pad", ValueType::kString).Str(std::string(80, 'x'));
  EXPECT_PARSE_ERROR(late.bytes, "absurd tensor count: 3 tensor infos do not fit in the 0 bytes");
}

TEST(GgufMalformed, AbsurdStringLength) {
  Raw raw;
  raw.Header(0, 1).Key("name", ValueType::kString).U64(~uint64_t{0}).Zeros(16);
  EXPECT_PARSE_ERROR(raw.bytes,
                     "absurd string length: value of key 'name' (string) has length "
                     "18446744073709551615, only 16 bytes remain");
}

TEST(GgufMalformed, AbsurdArrayCount) {
  Raw raw;
  raw.Header(0, 1).Key("scores", ValueType::kArray).U32(static_cast<uint32_t>(ValueType::kFloat64));
  raw.U64(uint64_t{1} << 62).Zeros(64);
  EXPECT_PARSE_ERROR(raw.bytes, "absurd array count: array 'scores' claims 4611686018427387904");
}

TEST(GgufMalformed, AbsurdNestedArrayCount) {
  Raw raw;
  raw.Header(0, 1).Key("nested", ValueType::kArray).U32(static_cast<uint32_t>(ValueType::kArray));
  raw.U64(2);
  raw.U32(static_cast<uint32_t>(ValueType::kUint8)).U64(1).Put<uint8_t>(1);  // a fine inner array
  raw.U32(static_cast<uint32_t>(ValueType::kUint8)).U64(uint64_t{1} << 40).Zeros(8);
  EXPECT_PARSE_ERROR(raw.bytes, "array 'nested' claims 1099511627776 uint8 elements");
  // The outer count is bounded by the 12 bytes every inner array header needs.
  Raw outer;
  outer.Header(0, 1).Key("nested", ValueType::kArray).U32(static_cast<uint32_t>(ValueType::kArray));
  outer.U64(10).Zeros(12 * 9 + 11);
  EXPECT_PARSE_ERROR(outer.bytes,
                     "array 'nested' claims 10 array elements (at least 12 bytes each)");
}

TEST(GgufMalformed, ArraysNestedTooDeep) {
  Raw raw;
  raw.Header(0, 1).Key("deep", ValueType::kArray);
  for (int i = 0; i < 9; ++i) raw.U32(static_cast<uint32_t>(ValueType::kArray)).U64(1);
  raw.U32(static_cast<uint32_t>(ValueType::kUint8)).U64(0).Zeros(64);
  EXPECT_PARSE_ERROR(raw.bytes, "key 'deep': arrays nested deeper than 8 levels");
  // Eight levels are fine.
  Raw ok;
  ok.Header(0, 1).Key("deep", ValueType::kArray);
  for (int i = 0; i < 7; ++i) ok.U32(static_cast<uint32_t>(ValueType::kArray)).U64(1);
  ok.U32(static_cast<uint32_t>(ValueType::kUint8)).U64(0);
  EXPECT_EQ(ParseError(ok.bytes), "<no error>");
}

TEST(GgufMalformed, UnknownValueType) {
  Raw raw;
  raw.Header(0, 1).Str("k").U32(13).Zeros(8);
  EXPECT_PARSE_ERROR(raw.bytes, "value type of key 'k': unknown value type 13 (at byte offset 33)");
  Raw element;
  element.Header(0, 1).Key("arr", ValueType::kArray).U32(0xffffffff).U64(0);
  EXPECT_PARSE_ERROR(element.bytes, "element type of array 'arr': unknown value type 4294967295");
}

TEST(GgufMalformed, InvalidBool) {
  Raw raw;
  raw.Header(0, 1).Key("flag", ValueType::kBool).Put<uint8_t>(2);
  EXPECT_PARSE_ERROR(raw.bytes, "key 'flag': invalid bool value 2");
}

TEST(GgufMalformed, UnknownTensorType) {
  for (uint32_t type : {4u, 5u, 16u, 39u, 0xffffffffu}) {
    Raw raw;
    raw.Header(1, 0).Tensor("blk.0.attn_q.weight", {32}, type, 0).PadTo(32).Zeros(1024);
    EXPECT_PARSE_ERROR(raw.bytes, fmt::format("tensor 'blk.0.attn_q.weight': unknown or "
                                              "unsupported tensor type {}",
                                              type));
  }
}

TEST(GgufMalformed, NDimsOutOfRange) {
  Raw zero;
  zero.Header(1, 0).Str("t").U32(0).U32(kF32).U64(0).Zeros(64);
  EXPECT_PARSE_ERROR(zero.bytes, "tensor 't': n_dims 0 out of range (1 to 4)");
  Raw five;
  five.Header(1, 0).Tensor("t", {1, 1, 1, 1, 1}, kF32, 0).PadTo(32).Zeros(32);
  EXPECT_PARSE_ERROR(five.bytes, "tensor 't': n_dims 5 out of range (1 to 4)");
}

TEST(GgufMalformed, NegativeDimension) {
  Raw raw;
  raw.Header(1, 0).Tensor("t", {4, ~uint64_t{0}}, kF32, 0).PadTo(32).Zeros(32);
  EXPECT_PARSE_ERROR(raw.bytes, "tensor 't': negative dimension 1 (-1)");
}

// Zero-size dimensions are rejected (by the writer too): no real model has an empty tensor, and
// accepting them would make every consumer handle zero-byte views.
TEST(GgufMalformed, ZeroDimension) {
  Raw raw;
  raw.Header(1, 0).Tensor("t", {4, 0}, kF32, 0).PadTo(32).Zeros(32);
  EXPECT_PARSE_ERROR(raw.bytes, "tensor 't': dimension 1 is zero");
}

TEST(GgufMalformed, DimensionProductOverflow) {
  Raw raw;
  raw.Header(1, 0).Tensor("t", {uint64_t{1} << 32, uint64_t{1} << 32}, kF32, 0).PadTo(32);
  EXPECT_PARSE_ERROR(raw.bytes,
                     "tensor 't': element count overflows (shape 4294967296 x 4294967296)");
}

TEST(GgufMalformed, RowNotMultipleOfBlockSize) {
  Raw raw;
  raw.Header(1, 0).Tensor("q", {48, 2}, static_cast<uint32_t>(DType::Q8_0), 0).PadTo(32).Zeros(256);
  EXPECT_PARSE_ERROR(raw.bytes,
                     "tensor 'q': row size 48 is not a multiple of the q8_0 block size 32");
}

TEST(GgufMalformed, DataSizeOverflow) {
  Raw raw;  // 2^62 elements fit in int64, but 2^62 x 4 bytes does not fit in 64 bits
  raw.Header(1, 0).Tensor("t", {uint64_t{1} << 61, 2}, kF32, 0).PadTo(32);
  EXPECT_PARSE_ERROR(raw.bytes, "tensor 't': data size overflows");
}

TEST(GgufMalformed, TensorDataOutOfFile) {
  Raw raw;
  raw.Header(1, 0).Tensor("t", {8}, kF32, uint64_t{1} << 40).PadTo(32).Zeros(64);
  EXPECT_PARSE_ERROR(raw.bytes, "data of tensor 't' (32 bytes at data offset 1099511627776)");
  Raw wrap;  // offset + data start wraps around 2^64
  wrap.Header(1, 0).Tensor("t", {8}, kF32, ~uint64_t{0} - 31).PadTo(32).Zeros(64);
  EXPECT_PARSE_ERROR(wrap.bytes, "extends past the end of the file");
}

TEST(GgufMalformed, MisalignedOffset) {
  Raw raw;
  raw.Header(1, 0).Tensor("t", {8}, kF32, 4).PadTo(32).Zeros(64);
  EXPECT_PARSE_ERROR(raw.bytes, "tensor 't': data offset 4 is not a multiple of the alignment 32");
}

TEST(GgufMalformed, OverlappingTensors) {
  Raw raw;
  raw.Header(2, 0).Tensor("a", {16}, kF32, 0).Tensor("b", {8}, kF32, 32).PadTo(32).Zeros(128);
  EXPECT_PARSE_ERROR(raw.bytes, "overlapping tensors: 'a' [0, 64) and 'b' [32, 64)");
  Raw same;  // the same bytes claimed twice
  same.Header(2, 0).Tensor("a", {8}, kF32, 0).Tensor("b", {8}, kF32, 0).PadTo(32).Zeros(64);
  EXPECT_PARSE_ERROR(same.bytes, "overlapping tensors");
}

TEST(GgufMalformed, DuplicateTensorName) {
  Raw raw;
  raw.Header(2, 0).Tensor("w", {8}, kF32, 0).Tensor("w", {8}, kF32, 32).PadTo(32).Zeros(64);
  EXPECT_PARSE_ERROR(raw.bytes, "duplicate tensor name 'w'");
}

TEST(GgufMalformed, EmptyTensorName) {
  Raw raw;
  raw.Header(1, 0).Tensor("", {8}, kF32, 0).PadTo(32).Zeros(64);
  EXPECT_PARSE_ERROR(raw.bytes, "tensor #0 has an empty name");
}

TEST(GgufMalformed, DuplicateKey) {
  Raw raw;
  raw.Header(0, 2).Key("general.name", ValueType::kString).Str("a");
  raw.Key("general.name", ValueType::kString).Str("b");
  EXPECT_PARSE_ERROR(raw.bytes, "duplicate key 'general.name'");
}

TEST(GgufMalformed, EmptyKey) {
  Raw raw;
  raw.Header(0, 1).Key("", ValueType::kUint8).Put<uint8_t>(0);
  EXPECT_PARSE_ERROR(raw.bytes, "empty key in key/value pair #0 (at byte offset 24)");
}

TEST(GgufMalformed, KeyNotUtf8) {
  for (std::string key : {"\xff", "a\xc0\x80", "\xed\xa0\x80", "\xe2\x82"}) {
    Raw raw;
    raw.Header(0, 1).Key(key, ValueType::kUint8).Put<uint8_t>(0).Zeros(8);
    EXPECT_PARSE_ERROR(raw.bytes, "key of key/value pair #0 is not valid UTF-8");
  }
}

TEST(GgufMalformed, BadAlignment) {
  const std::vector<std::pair<Value, std::string>> cases = {
      {Value(uint32_t{0}), "must be a nonzero power of two, found 0"},
      {Value(uint32_t{48}), "must be a nonzero power of two, found 48"},
      {Value(int32_t{-32}), "must be a nonzero power of two, found -32"},
      {Value(int64_t{std::numeric_limits<int64_t>::min()}), "must be a nonzero power of two"},
      {Value("32"), "must be an integer, found string"},
      {Value(32.0f), "must be an integer, found float32"},
  };
  for (const auto& [value, phrase] : cases) {
    Raw raw;
    raw.Header(0, 1).Key("general.alignment", value.type());
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string>) {
            raw.Str(v);
          } else if constexpr (std::is_arithmetic_v<T>) {
            raw.Put(v);
          }
        },
        value.storage());
    EXPECT_PARSE_ERROR(raw.bytes, "bad alignment: general.alignment " + phrase);
  }
}

TEST(GgufReader, AlignmentOfAnyIntegerType) {
  Writer w;
  w.Set("general.alignment", Value(int16_t{16}));
  w.AddTensor("t", DType::F32, {3}, Bytes(12, 0));
  w.AddTensor("u", DType::F32, {3}, Bytes(12, 1));
  const std::vector<uint8_t> bytes = w.Serialize();
  const File file = File::Parse(bytes);
  EXPECT_EQ(file.alignment(), 16u);
  EXPECT_EQ(file.FindTensor("u")->offset, 16u);
}

// Vocab-only files: the file may end right after the tensor infos or anywhere in the padding.
TEST(GgufReader, NoTensorsFileMayEndBeforeDataSection) {
  Writer w;
  w.Set("tokenizer.ggml.model", Value("gpt2"));
  const std::vector<uint8_t> padded = w.Serialize();
  Raw raw;
  raw.Header(0, 1).Key("tokenizer.ggml.model", ValueType::kString).Str("gpt2");
  ASSERT_LE(raw.bytes.size(), padded.size());
  for (size_t n = raw.bytes.size(); n <= padded.size(); ++n) {
    const std::vector<uint8_t> prefix(padded.begin(), padded.begin() + static_cast<ptrdiff_t>(n));
    const File file = File::Parse(prefix);
    EXPECT_EQ(file.metadata().GetString("tokenizer.ggml.model"), "gpt2");
    EXPECT_TRUE(file.tensors().empty());
  }
}

// Every proper prefix of a file that ends in tensor data is an error, never a crash; prefixes that
// only drop the trailing padding are still valid.
TEST(GgufMalformed, TruncatedAtEveryByte) {
  for (uint32_t version : {2u, 3u}) {
    Writer writer(version);
    AddEveryValueType(writer.metadata());
    for (const auto& t : SomeTensors()) writer.AddTensor(t.name, t.type, t.shape, t.data);
    const std::vector<uint8_t> bytes = writer.Serialize();
    const File full = File::Parse(bytes);
    const TensorInfo& last = full.tensors().back();
    const uint64_t data_end = full.data_offset() + last.offset + last.nbytes;
    ASSERT_LT(data_end, bytes.size());  // the file ends in padding
    for (size_t n = 0; n < bytes.size(); ++n) {
      // A buffer of exactly n bytes, so that sanitizers see any read past it.
      const std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
      if (n < data_end) {
        EXPECT_THAT(ParseError(prefix), HasSubstr("bad.gguf: ")) << "prefix of " << n << " bytes";
      } else {
        EXPECT_EQ(ParseError(prefix), "<no error>") << "prefix of " << n << " bytes";
      }
    }
  }
}

}  // namespace
}  // namespace dizuo::gguf
