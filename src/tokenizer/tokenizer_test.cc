#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "core/error.h"
#include "test_util.h"

namespace dizuo {
namespace {

using testing::ReadFile;
using testing::TokenizerData;
using testing::VocabMetadata;
using testing::VocabTokenizer;

std::vector<std::string> SplitTests(const std::string& inp) {
  // Strings are separated (and the file ended) by "\n__ggml_vocab_test__\n".
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t pos; (pos = inp.find(sep, start)) != std::string::npos; start = pos + sep.size()) {
    out.push_back(inp.substr(start, pos - start));
  }
  return out;
}

std::vector<TokenId> ParseIds(const std::string& line) {
  std::vector<TokenId> ids;
  std::istringstream in(line);
  for (TokenId id; in >> id;) ids.push_back(id);
  return ids;
}

class VocabFileTest : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabFileTest, MatchesLlamaCppExpectedIds) {
  const std::string vocab = "tokenizer/ggml-vocab-" + GetParam() + ".gguf";
  const Tokenizer& tok = VocabTokenizer(vocab);
  const auto texts = SplitTests(ReadFile(TokenizerData(vocab + ".inp")));
  std::vector<std::string> lines;
  std::istringstream out(ReadFile(TokenizerData(vocab + ".out")));
  for (std::string line; std::getline(out, line);) lines.push_back(line);
  ASSERT_GT(texts.size(), 30u);
  ASSERT_EQ(texts.size(), lines.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(tok.Encode(texts[i], false, false), ParseIds(lines[i]))
        << "string #" << i << ": '" << texts[i] << "'";
  }
}

TEST_P(VocabFileTest, DecodeInvertsEncode) {
  const std::string vocab = "tokenizer/ggml-vocab-" + GetParam() + ".gguf";
  const Tokenizer& tok = VocabTokenizer(vocab);
  for (const std::string& text : SplitTests(ReadFile(TokenizerData(vocab + ".inp")))) {
    // Decoding concatenates the pieces (SentencePiece's added space dropped), then applies the
    // vocabulary's space clean-up, so that is what a lossless round trip gives back.
    std::string expected = text;
    if (tok.clean_spaces()) CleanTokenizationSpaces(expected);
    EXPECT_EQ(tok.Decode(tok.Encode(text, false, false), false), expected) << "'" << text << "'";
  }
}

INSTANTIATE_TEST_SUITE_P(SharedVocabs, VocabFileTest,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "falcon",
                                           "deepseek-coder", "starcoder"));

TEST(TokenizerTest, SpmBasics) {
  const Tokenizer& tok = VocabTokenizer("tokenizer/ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(tok.n_vocab(), 32000);
  EXPECT_EQ(tok.bos(), 1);
  EXPECT_EQ(tok.eos(), 2);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_FALSE(tok.add_eos());
  EXPECT_TRUE(tok.IsEndOfGeneration(2));
  EXPECT_FALSE(tok.IsEndOfGeneration(1));
  EXPECT_EQ(tok.Encode("", true, false), std::vector<TokenId>{1});
  EXPECT_TRUE(tok.Encode("", false, false).empty());
  // Byte fallback: U+10FFFF has no token, so it becomes its four <0xXX> byte tokens.
  const auto ids = tok.Encode("\xF4\x8F\xBF\xBF", false, false);
  ASSERT_EQ(ids.size(), 5u);  // "▁" + 4 bytes
  EXPECT_EQ(tok.TokenToPiece(ids[1], false), "\xF4");
  EXPECT_EQ(tok.Decode(ids, false), "\xF4\x8F\xBF\xBF");
  // Control tokens: parsed only with parse_special, rendered only with render_special.
  EXPECT_EQ(tok.Encode("</s>", false, true), std::vector<TokenId>{2});
  EXPECT_NE(tok.Encode("</s>", false, false), std::vector<TokenId>{2});
  EXPECT_EQ(tok.TokenToPiece(2, false), "");
  EXPECT_EQ(tok.TokenToPiece(2, true), "</s>");
  EXPECT_EQ(tok.Decode(std::vector<TokenId>{1, 15043}, true), "<s> Hello");
}

TEST(TokenizerTest, BpeBasics) {
  const Tokenizer& tok = VocabTokenizer("tokenizer/ggml-vocab-gpt-2.gguf");
  EXPECT_EQ(tok.n_vocab(), 50257);
  EXPECT_FALSE(tok.add_bos());
  EXPECT_EQ(tok.Encode("<|endoftext|>", false, true), std::vector<TokenId>{50256});
  EXPECT_GT(tok.Encode("<|endoftext|>", false, false).size(), 1u);
  EXPECT_TRUE(tok.IsEndOfGeneration(50256));
  EXPECT_EQ(tok.Encode("Hello world", false, false), (std::vector<TokenId>{15496, 995}));
  EXPECT_EQ(tok.TokenToPiece(995, false), " world");
  // Invalid UTF-8 never crashes; it is tokenized as U+FFFD, as llama.cpp does.
  EXPECT_EQ(tok.Encode("a\xFF"
                       "b",
                       false, false),
            tok.Encode("a\xEF\xBF\xBD"
                       "b",
                       false, false));
  EXPECT_EQ(tok.Encode("\xC3", false, false), tok.Encode("\xEF\xBF\xBD", false, false));
  EXPECT_THROW(tok.Decode(std::vector<TokenId>{50257}, false), Error);
  EXPECT_THROW(tok.TokenToPiece(-1, false), Error);
}

TEST(TokenizerTest, LongWhitespaceRunsDoNotBreakTheRegexEngine) {
  const Tokenizer& tok = VocabTokenizer("tokenizer/ggml-vocab-gpt-2.gguf");
  const std::string spaces(200000, ' ');
  const auto ids = tok.Encode(spaces + "x" + std::string(100000, '\n'), false, false);
  EXPECT_GT(ids.size(), 1000u);
}

TEST(TokenizerTest, ConcurrentEncodeGivesTheSameIds) {
  // Encode is const and keeps its scratch space per call or per thread.
  const Tokenizer& tok = VocabTokenizer("tokenizer/ggml-vocab-gpt-2.gguf");
  const std::string text = ReadFile(TokenizerData("text/wiki.test.raw")).substr(0, 100000);
  const std::vector<TokenId> expected = tok.Encode(text, false, false);
  std::vector<std::vector<TokenId>> results(4);
  std::vector<std::thread> threads;
  for (auto& result : results) {
    threads.emplace_back([&] { result = tok.Encode(text, false, false); });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) EXPECT_EQ(result, expected);
}

TEST(TokenizerTest, RandomBytesNeverBreakEncodeOrDecode) {
  std::mt19937 rng(11);
  for (const char* vocab :
       {"tokenizer/ggml-vocab-gpt-2.gguf", "tokenizer/ggml-vocab-llama-spm.gguf",
        "tokenizer/ggml-vocab-deepseek-coder.gguf",
        "tokenizer-extra/ggml-vocab-deepseek-llm.gguf"}) {
    const Tokenizer& tok = VocabTokenizer(vocab);
    for (int round = 0; round < 200; ++round) {
      std::string text(rng() % 64, '\0');
      for (char& c : text) c = static_cast<char>(rng() % 4 == 0 ? rng() % 256 : 0x80 + rng() % 64);
      const std::vector<TokenId> ids = tok.Encode(text, true, true);
      for (TokenId id : ids) ASSERT_TRUE(tok.IsValid(id)) << vocab;
      tok.Decode(ids, true);
    }
  }
}

gguf::Metadata GptMetadata() { return VocabMetadata("tokenizer/ggml-vocab-gpt-2.gguf"); }

std::string LoadError(const gguf::Metadata& md) {
  try {
    Tokenizer::FromGguf(md);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TokenizerErrorTest, UnknownPreTokenizer) {
  gguf::Metadata md = GptMetadata();
  md.Set("tokenizer.ggml.pre", gguf::Value("xyz"));
  const std::string error = LoadError(md);
  EXPECT_NE(error.find("unknown pre-tokenizer 'xyz' (known: "), std::string::npos) << error;
  EXPECT_NE(error.find("llama-bpe"), std::string::npos) << error;
}

TEST(TokenizerErrorTest, MissingTokens) {
  gguf::Metadata md = GptMetadata();
  md.Remove("tokenizer.ggml.tokens");
  EXPECT_NE(LoadError(md).find("missing key 'tokenizer.ggml.tokens'"), std::string::npos);
}

// llama.cpp keeps the default for an out-of-range special-token id (with a warning) and treats
// 0xFFFFFFFF as "none"; real files (stories260K) rely on both.
TEST(TokenizerTest, OutOfRangeSpecialIdKeepsDefault) {
  gguf::Metadata md = GptMetadata();
  md.Remove("tokenizer.ggml.bos_token_id");
  const TokenId default_bos = Tokenizer::FromGguf(md)->bos();  // the gpt2 model's default
  md.Set("tokenizer.ggml.bos_token_id", gguf::Value(uint32_t{50257}));
  EXPECT_EQ(Tokenizer::FromGguf(md)->bos(), default_bos);
  md.Set("tokenizer.ggml.bos_token_id", gguf::Value(uint32_t{0xFFFFFFFF}));
  EXPECT_EQ(Tokenizer::FromGguf(md)->bos(), -1);
}

TEST(TokenizerErrorTest, MalformedArrays) {
  gguf::Metadata md = GptMetadata();
  md.Set("tokenizer.ggml.token_type", gguf::Value::Int32Array({1, 1}));
  EXPECT_NE(LoadError(md).find("fewer than the 50257 tokens"), std::string::npos) << LoadError(md);
  md = GptMetadata();
  md.Set("tokenizer.ggml.tokens", gguf::Value::Float32Array({1.0f}));
  EXPECT_NE(LoadError(md).find("'tokenizer.ggml.tokens' has elements of type"), std::string::npos)
      << LoadError(md);
  md = GptMetadata();
  md.Remove("tokenizer.ggml.merges");
  EXPECT_NE(LoadError(md).find("missing key 'tokenizer.ggml.merges'"), std::string::npos);
  md = GptMetadata();
  md.Set("tokenizer.ggml.model", gguf::Value("wordpiece2"));
  EXPECT_NE(LoadError(md).find("unsupported tokenizer model 'wordpiece2'"), std::string::npos);
}

}  // namespace
}  // namespace dizuo
