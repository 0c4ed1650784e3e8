#include <gtest/gtest.h>

#include <random>

#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace dizuo {
namespace {

using testing::VocabTokenizer;

std::string StreamAll(const Tokenizer& tok, const std::vector<TokenId>& ids,
                      std::vector<std::string>* chunks = nullptr) {
  StreamDecoder decoder(tok);
  std::string out;
  for (TokenId id : ids) {
    std::string chunk = decoder.Push(id);
    EXPECT_TRUE(tok::IsStrictUtf8(chunk)) << "chunk is not valid UTF-8";
    if (chunks) chunks->push_back(chunk);
    out += chunk;
  }
  out += decoder.Flush();
  return out;
}

TEST(StreamDecoderTest, HoldsBackSplitCharactersFromByteFallback) {
  const Tokenizer& tok = VocabTokenizer("tokenizer/ggml-vocab-llama-spm.gguf");
  // U+10FFFF and U+E01EF have no SentencePiece token: each becomes four <0xXX> tokens.
  const std::string text = "a\xF4\x8F\xBF\xBF b \xF3\xA0\x87\xAF";
  const std::vector<TokenId> ids = tok.Encode(text, false, false);
  std::vector<std::string> chunks;
  EXPECT_EQ(StreamAll(tok, ids, &chunks), text);
  // The character is emitted whole by the token that completes it, nothing before.
  size_t first = 0;
  while (first < chunks.size() && chunks[first].find('\xF4') == std::string::npos) ++first;
  ASSERT_LT(first, chunks.size());
  EXPECT_EQ(chunks[first], "\xF4\x8F\xBF\xBF");
  EXPECT_EQ(chunks[first - 1], "");
  EXPECT_EQ(chunks[first - 2], "");
  EXPECT_EQ(chunks[first - 3], "");
}

TEST(StreamDecoderTest, SplitCharactersInByteLevelBpe) {
  const Tokenizer& tok = VocabTokenizer("tokenizer/ggml-vocab-gpt-2.gguf");
  const std::string text = "日本語 🙂 emoji 👨‍👩‍👧 and Ω";
  const std::vector<TokenId> ids = tok.Encode(text, false, false);
  EXPECT_EQ(StreamAll(tok, ids), text);
}

TEST(StreamDecoderTest, IncompleteTailBecomesReplacementCharacter) {
  const Tokenizer& tok = VocabTokenizer("tokenizer/ggml-vocab-llama-spm.gguf");
  std::vector<TokenId> ids = tok.Encode("x\xF4\x8F\xBF\xBF", false, false);
  ids.pop_back();  // drop the last byte of the 4-byte character
  StreamDecoder decoder(tok);
  std::string out;
  for (TokenId id : ids) out += decoder.Push(id);
  EXPECT_EQ(out, "x");
  EXPECT_EQ(decoder.Flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(decoder.Flush(), "");
}

TEST(StreamDecoderTest, MatchesDecodeIncludingSpaceCleanUp) {
  // gpt-2 cleans " ," and " 's" on decode; the stream must give the same text.
  for (const char* vocab :
       {"tokenizer/ggml-vocab-gpt-2.gguf", "tokenizer/ggml-vocab-llama-spm.gguf",
        "tokenizer/ggml-vocab-falcon.gguf"}) {
    const Tokenizer& tok = VocabTokenizer(vocab);
    for (const std::string text :
         {"Hello , world ! It 's a ' quoted ' word ; they 're here . 日本 ?",
          " leading space and trailing ,", "a ' b ' c 've 'm 's 'll 'd", "x , , , y . . ."}) {
      const std::vector<TokenId> ids = tok.Encode(text, true, false);
      EXPECT_EQ(StreamAll(tok, ids), tok.Decode(ids, false)) << vocab << ": " << text;
    }
  }
}

TEST(StreamDecoderTest, RandomTokenSequencesGiveValidUtf8) {
  const Tokenizer& tok = VocabTokenizer("tokenizer/ggml-vocab-gpt-2.gguf");
  std::mt19937 rng(7);
  std::uniform_int_distribution<TokenId> pick(0, tok.n_vocab() - 1);
  for (int round = 0; round < 50; ++round) {
    std::vector<TokenId> ids(20);
    for (TokenId& id : ids) id = pick(rng);
    const std::string streamed = StreamAll(tok, ids);
    EXPECT_TRUE(tok::IsStrictUtf8(streamed));
    const std::string decoded = tok.Decode(ids, false);
    if (tok::IsStrictUtf8(decoded)) {
      EXPECT_EQ(streamed, decoded);
    }
  }
}

}  // namespace
}  // namespace dizuo
