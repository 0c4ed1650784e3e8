// UTF-8 helpers with llama.cpp's exact leniency, and GPT-2's byte <-> unicode mapping.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dizuo::tok {

// Length of the sequence `lead` starts, judged from its high nibble only (continuation and invalid
// bytes count as 1). This is how llama.cpp cuts text into initial merge symbols.
inline size_t Utf8SeqLen(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

void AppendUtf8(uint32_t cpt, std::string& out);

// Decodes one code point at `pos` as llama.cpp does: overlong forms and surrogates are accepted,
// a malformed sequence yields U+FFFD and consumes one byte. Advances `pos`.
uint32_t DecodeLenient(std::string_view text, size_t& pos);

// True when `text` is strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool IsStrictUtf8(std::string_view text);

// The text llama.cpp's BPE pre-tokenizer works on: every code point decoded leniently and
// re-encoded (malformed bytes become U+FFFD; code points past U+10FFFF too). `regex_subject`
// has the same byte length but surrogates replaced by U+FFFD, so that it is valid UTF-8 for PCRE2.
struct CanonicalText {
  std::string bytes;
  std::string regex_subject;  // empty when identical to `bytes`
};
CanonicalText Canonicalize(std::string_view text);

// GPT-2's reversible mapping of the 256 byte values onto printable code points, UTF-8 encoded.
const std::array<std::string, 256>& ByteToUnicode();
// Inverse of ByteToUnicode for one code point; -1 when the code point stands for no byte.
int UnicodeToByte(uint32_t cpt);

// Number of bytes at the end of `text` that form an incomplete (but so far valid) UTF-8 sequence.
size_t IncompleteUtf8Tail(std::string_view text);
// Replaces malformed bytes by U+FFFD so that the result is valid UTF-8.
std::string ToValidUtf8(std::string_view text);

}  // namespace dizuo::tok
