// Tokenizer vocabularies for synthetic models, learned deterministically from a built-in text.
//
// SentencePiece-style (`tokenizer.ggml.model = llama`): specials, 256 byte-fallback tokens
// <0x00>..<0xFF>, the text's characters, then pieces from BPE-style training (every piece is the
// concatenation of two earlier ones, scored by merge order so SentencePiece merging reaches it),
// padded with unreachable filler pieces. Byte-level BPE (`gpt2`, pre-tokenizer `qwen2`): the 256
// byte symbols, merge results in merge order with their merges, three ChatML specials, fillers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dizuo {

// llama.cpp's token types.
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6
};

struct SyntheticVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  std::vector<std::string> merges;  // BPE only: "left right", in rank order
  int32_t bos = -1, eos = -1, unk = -1, pad = -1;
  int32_t start_of_turn = -1, end_of_turn = -1;  // Gemma's chat control tokens
  int32_t im_start = -1, im_end = -1;            // ChatML's
};

// `gemma` uses Gemma's special layout (<pad> <eos> <bos> <unk> <start_of_turn> <end_of_turn>);
// otherwise Llama's (<unk> <s> </s>). Throws dizuo::Error if `n_vocab` is too small.
SyntheticVocab BuildSpmVocab(int n_vocab, bool gemma);
SyntheticVocab BuildBpeVocab(int n_vocab);

// Smallest vocabulary each builder accepts.
inline constexpr int kMinSyntheticVocab = 512;

}  // namespace dizuo
