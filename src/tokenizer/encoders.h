// The two merge algorithms, over one piece of text each.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tokenizer/vocab.h"

namespace dizuo::tok {

// SentencePiece-style merging (llama.cpp's llm_tokenizer_spm): start from UTF-8 characters,
// repeatedly merge the adjacent pair whose concatenation is the highest-scoring token (ties:
// leftmost), then emit each symbol's token, or its bytes as <0xXX> tokens when it is none.
//
// The merge order is global, but a merge only ever joins characters that are adjacent inside some
// token. So the text is first cut wherever two adjacent characters occur together in no token:
// no merge can cross such a cut, and merging the pieces separately gives exactly the same result
// while keeping the work queue small.
class SpmEncoder {
 public:
  explicit SpmEncoder(const Vocab& vocab);
  // `text` is already whitespace-escaped ("▁").
  void Encode(std::string_view text, std::vector<TokenId>& out) const;

 private:
  void EncodePiece(std::string_view text, std::vector<TokenId>& out) const;
  static uint32_t PackChar(std::string_view text, size_t pos, size_t len);

  const Vocab& vocab_;
  std::unordered_set<uint64_t> joined_pairs_;  // (char, next char) pairs found inside tokens
  std::array<TokenId, 256> byte_tokens_;       // -1 when the vocabulary has no token for the byte
};

// Byte-level BPE merging (llama.cpp's llm_tokenizer_bpe_session) over one pre-tokenized word:
// start from bytes (as GPT-2's byte-to-unicode characters), repeatedly apply the lowest-ranked
// merge (ties: leftmost). Merge parts are interned to integers, so no strings are built per merge.
class BpeEncoder {
 public:
  explicit BpeEncoder(const Vocab& vocab);
  struct Scratch;
  // `word` holds raw bytes (not yet byte-to-unicode encoded).
  void EncodeWord(std::string_view word, Scratch& scratch, std::vector<TokenId>& out) const;

  struct Scratch {
    struct Symbol {
      int32_t prev, next;
      uint32_t start, n;  // byte range within the word
      int32_t part;       // interned text; a token id when < n_vocab; -1 when unknown
    };
    struct Bigram {
      int32_t rank, left, right, result;
      uint32_t size;
    };
    std::vector<Symbol> symbols;
    std::vector<Bigram> heap;
    std::string encoded;
  };

 private:
  void AddBigram(int32_t left, int32_t right, Scratch& s) const;
  static uint64_t Key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  const Vocab& vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::unordered_map<std::string, int32_t> extra_parts_;  // merge parts that are not tokens
  std::array<int32_t, 256> byte_parts_;
  std::array<std::vector<TokenId>, 256> byte_fallback_;  // tokens for an unmergeable byte
};

}  // namespace dizuo::tok
