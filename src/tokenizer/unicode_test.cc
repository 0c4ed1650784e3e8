#include "tokenizer/unicode.h"

#include <gtest/gtest.h>

#include "tokenizer/pretokenizer.h"

namespace dizuo::tok {
namespace {

TEST(UnicodeTest, LenientDecodingAsLlamaCpp) {
  // Malformed bytes become U+FFFD one byte at a time; overlong forms and surrogates decode.
  EXPECT_EQ(Canonicalize("a\xFF"
                         "b")
                .bytes,
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(Canonicalize("\xC3").bytes, "\xEF\xBF\xBD");
  EXPECT_EQ(Canonicalize("\xE2\x82(").bytes, "\xEF\xBF\xBD\xEF\xBF\xBD(");
  EXPECT_EQ(Canonicalize(std::string_view("\xC0\x80", 2)).bytes, std::string(1, '\0'));
  const CanonicalText surrogate = Canonicalize("\xED\xA0\x80");
  EXPECT_EQ(surrogate.bytes, "\xED\xA0\x80");
  EXPECT_EQ(surrogate.regex_subject, "\xEF\xBF\xBD");
}

TEST(UnicodeTest, StrictValidation) {
  EXPECT_TRUE(IsStrictUtf8("plain ascii and 日本 🙂"));
  EXPECT_FALSE(IsStrictUtf8("\xC0\x80"));
  EXPECT_FALSE(IsStrictUtf8("\xED\xA0\x80"));
  EXPECT_FALSE(IsStrictUtf8("\xF4\x90\x80\x80"));
  EXPECT_FALSE(IsStrictUtf8("abc\xE6\x97"));
}

TEST(UnicodeTest, IncompleteTail) {
  EXPECT_EQ(IncompleteUtf8Tail("ab\xE6\x97"), 2u);
  EXPECT_EQ(IncompleteUtf8Tail("ab\xE6\x97\xA5"), 0u);
  EXPECT_EQ(IncompleteUtf8Tail("\xF0"), 1u);
  EXPECT_EQ(IncompleteUtf8Tail("a\x80"), 0u);
  EXPECT_EQ(ToValidUtf8("a\x80"
                        "b"),
            "a\xEF\xBF\xBD"
            "b");
}

TEST(UnicodeTest, ByteToUnicodeIsABijection) {
  const auto& table = ByteToUnicode();
  EXPECT_EQ(table[' '], "\xC4\xA0");  // "Ġ"
  EXPECT_EQ(table['A'], "A");
  for (int b = 0; b < 256; ++b) {
    size_t pos = 0;
    EXPECT_EQ(UnicodeToByte(DecodeLenient(table[b], pos)), b);
  }
  EXPECT_EQ(UnicodeToByte(0x4E00), -1);
}

TEST(PreTokenizerTest, WhitespaceMeansLlamaCppWhitespace) {
  EXPECT_EQ(TranslatePattern(R"(a\s)").find(R"(\x{85})") != std::string::npos, true);
  RegexSplitter split({R"(\s+(?!\S)|\s+)", R"(\p{L}+)"});
  std::vector<Span> words;
  const std::string text =
      "ab \xC2\x85"
      "cd  e";  // U+0085 counts as whitespace
  split.Split(text, words);
  std::vector<std::string> pieces;
  for (const auto& [b, e] : words) pieces.push_back(text.substr(b, e - b));
  EXPECT_EQ(pieces, (std::vector<std::string>{"ab", " ", "\xC2\x85", "cd", " ", " ", "e"}));
}

TEST(PreTokenizerTest, UnknownNameAndNamesList) {
  EXPECT_EQ(FindPreTokenizer("nonexistent"), nullptr);
  ASSERT_NE(FindPreTokenizer(""), nullptr);
  EXPECT_EQ(FindPreTokenizer(""), FindPreTokenizer("default"));
  EXPECT_TRUE(FindPreTokenizer("llama-bpe")->ignore_merges);
  EXPECT_NE(KnownPreTokenizerNames().find("qwen2"), std::string::npos);
}

}  // namespace
}  // namespace dizuo::tok
