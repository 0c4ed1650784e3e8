// A vocabulary read from GGUF metadata, with the defaults and fix-ups llama.cpp applies.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace dizuo::tok {

// Token attributes (a bit set, like llama.cpp's llama_token_attr).
enum TokenAttr : uint32_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1u << 0,
  kAttrUnused = 1u << 1,
  kAttrNormal = 1u << 2,
  kAttrControl = 1u << 3,
  kAttrUserDefined = 1u << 4,
  kAttrByte = 1u << 5,
  kAttrLStrip = 1u << 7,  // a special token swallows the whitespace before it
  kAttrRStrip = 1u << 8,  // ... and after it
};

// GGUF tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

enum class VocabType { kSpm, kBpe };

// The texts of a vocabulary (or their pieces) in one buffer, with a 32-bit offset per text:
// Gemma 3's 262,144 token texts are 2.2 MiB of bytes and 1 MiB of offsets, where a
// std::vector<std::string> took 8 MiB of strings and a heap block for each of the 17,815 texts
// longer than 15 bytes.
class TextTable {
 public:
  void Reserve(size_t n) { offsets_.reserve(n + 1); }
  void Add(std::string_view text);
  std::string_view operator[](size_t i) const {
    return {bytes_.data() + offsets_[i], offsets_[i + 1] - offsets_[i]};
  }
  size_t size() const { return offsets_.size() - 1; }

 private:
  std::string bytes_;
  std::vector<uint32_t> offsets_{0};  // text i is bytes_[offsets_[i], offsets_[i + 1])
};

// Token text → id, for the texts of a vocabulary: open addressing over a power-of-two table of
// ids (4 bytes a slot, at most half full), keys compared against the texts themselves. For
// Gemma 3's 262,144 tokens it takes 2 MiB where std::unordered_map took about 12.
class TextIndex {
 public:
  // Indexes texts[0..n); returns -1, or the first id whose text an earlier id already has (then
  // that id is not indexed).
  TokenId Build(const TextTable& texts);
  TokenId Find(std::string_view text, const TextTable& texts) const;

 private:
  std::vector<TokenId> slots_;  // -1: empty
  size_t mask_ = 0;
};

struct Vocab {
  VocabType type = VocabType::kSpm;
  std::string model;                      // tokenizer.ggml.model
  std::string pre_name;                   // tokenizer.ggml.pre ("" when absent)
  const PreTokenizerSpec* pre = nullptr;  // BPE only

  TextTable texts;
  std::vector<float> scores;
  std::vector<uint32_t> attrs;
  TextIndex ids;

  TokenId bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, sep = -1, pad = -1, mask = -1;
  std::vector<TokenId> eog;  // sorted
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;
  bool remove_extra_whitespaces = false;  // read for completeness; llama.cpp's SPM ignores it
  bool clean_spaces = false;
  bool ignore_merges = false;

  // Special tokens (control, user-defined, unknown), longest text first: the order in which
  // their text is searched for when partitioning the input.
  std::vector<TokenId> special_tokens;
  // BPE merges, `tokenizer.ggml.merges[i]` = "left right", rank i. A tokenizer empties it once
  // its encoder holds them.
  std::vector<std::pair<std::string, std::string>> merges;
  // The bytes each token decodes to, special tokens rendered (token_to_piece with special).
  TextTable pieces;

  int32_t size() const { return static_cast<int32_t>(texts.size()); }
  TokenId Find(std::string_view text) const { return ids.Find(text, texts); }
  bool Is(TokenId id, uint32_t attr) const { return (attrs[id] & attr) != 0; }
};

// Throws dizuo::Error naming the key and the problem.
Vocab LoadVocab(const gguf::Metadata& metadata);

}  // namespace dizuo::tok
