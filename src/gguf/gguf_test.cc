#include "gguf/gguf.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

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

}  // namespace
}  // namespace dizuo::gguf
