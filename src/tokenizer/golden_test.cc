// Compares with ids that llama.cpp produced (tests/golden/tokenizer, made by
// scripts/gen-tokenizer-goldens.py) for vocabularies without .inp/.out files, including the gpt-2
// vocabulary with tokenizer.ggml.pre overridden to exercise every pre-tokenizer.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <algorithm>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace dizuo {
namespace {

using nlohmann::json;
using testing::ReadFile;
using testing::SourceDir;
using testing::TokenizerData;
using testing::VocabMetadata;

std::filesystem::path GoldenDir() { return SourceDir() / "tests" / "golden" / "tokenizer"; }

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::string TextOf(const json& j) {
  return j.is_string() ? j.get<std::string>() : FromHex(j["hex"]);
}

std::vector<TokenId> IdsOf(const json& j) {
  std::vector<TokenId> ids;
  std::istringstream in(j.get<std::string>());
  for (TokenId id; in >> id;) ids.push_back(id);
  return ids;
}

uint64_t Fnv1a(const std::vector<TokenId>& ids) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (TokenId id : ids) {
    const auto u = static_cast<uint32_t>(id);
    for (int k = 0; k < 4; ++k) h = (h ^ ((u >> (8 * k)) & 0xFF)) * 0x100000001b3ull;
  }
  return h;
}

std::vector<std::string> GoldenNames() {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(GoldenDir())) {
    const std::string stem = entry.path().stem().string();
    if (entry.path().extension() == ".json" && stem != "strings") names.push_back(stem);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The goldens that also pin the ids of all of wiki.test.raw (count and hash).
std::vector<std::string> WikiGoldenNames() {
  std::vector<std::string> names;
  for (const std::string& name : GoldenNames()) {
    if (json::parse(ReadFile(GoldenDir() / (name + ".json"))).contains("wiki")) {
      names.push_back(name);
    }
  }
  return names;
}

const std::vector<std::string>& Strings() {
  static const std::vector<std::string> strings = [] {
    const json doc = json::parse(ReadFile(GoldenDir() / "strings.json"));
    std::vector<std::string> out;
    for (const json& s : doc["strings"]) out.push_back(TextOf(s));
    return out;
  }();
  return strings;
}

class GoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    golden_ = json::parse(ReadFile(GoldenDir() / (GetParam() + ".json")));
    gguf::Metadata md = VocabMetadata(golden_["vocab"].get<std::string>());
    if (golden_["pre"].is_string()) {
      // The same override the generator wrote into a derived file.
      const std::string pre = golden_["pre"];
      md.Remove("tokenizer.ggml.pre");
      if (pre != "<absent>") md.Set("tokenizer.ggml.pre", gguf::Value(pre));
    }
    tokenizer_ = Tokenizer::FromGguf(md);
  }
  json golden_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_P(GoldenTest, PlainText) {
  const auto& strings = Strings();
  const json& ids = golden_["ids"];
  ASSERT_EQ(ids.size(), strings.size());
  for (size_t i = 0; i < strings.size(); ++i) {
    EXPECT_EQ(tokenizer_->Encode(strings[i], false, false), IdsOf(ids[i]))
        << "string #" << i << ": '" << strings[i] << "'";
  }
}

TEST_P(GoldenTest, SpecialTokensAndBos) {
  ASSERT_FALSE(golden_["special"].empty());
  for (const json& c : golden_["special"]) {
    const std::string text = c["text"];
    EXPECT_EQ(tokenizer_->Encode(text, c["add_special"], c["parse_special"]), IdsOf(c["ids"]))
        << "'" << text << "' add_special=" << c["add_special"]
        << " parse_special=" << c["parse_special"];
  }
}

TEST_P(GoldenTest, Decode) {
  ASSERT_FALSE(golden_["decode"].empty());
  for (const json& c : golden_["decode"]) {
    const size_t index = c["string"];
    ASSERT_LT(index, golden_["ids"].size());
    const std::vector<TokenId> ids = IdsOf(golden_["ids"][index]);
    EXPECT_EQ(tokenizer_->Decode(ids, c["special"]), TextOf(c["text"])) << golden_["ids"][index];
  }
}

using WholeWikiTest = GoldenTest;

TEST_P(WholeWikiTest, WholeWikiText) {
  const std::string text = ReadFile(TokenizerData("text/wiki.test.raw"));
  const std::vector<TokenId> ids = tokenizer_->Encode(text, false, false);
  EXPECT_EQ(ids.size(), golden_["wiki"]["count"].get<size_t>());
  EXPECT_EQ(fmt::format("{:016x}", Fnv1a(ids)), golden_["wiki"]["fnv1a"].get<std::string>());
}

INSTANTIATE_TEST_SUITE_P(LlamaCpp, GoldenTest, ::testing::ValuesIn(GoldenNames()),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });
INSTANTIATE_TEST_SUITE_P(LlamaCpp, WholeWikiTest, ::testing::ValuesIn(WikiGoldenNames()),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace dizuo
