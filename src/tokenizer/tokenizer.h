// Tokenizers built from GGUF metadata alone: SentencePiece-style (`tokenizer.ggml.model = llama`)
// and byte-level BPE (`gpt2`) with the pre-tokenizer that `tokenizer.ggml.pre` names. Output
// matches llama.cpp's tokenizer on the same vocabulary.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"

namespace dizuo {

using TokenId = int32_t;

class Tokenizer {
 public:
  // Builds the tokenizer described by `metadata`. Throws dizuo::Error naming the problem (missing
  // or malformed key, unknown model or pre-tokenizer).
  static std::unique_ptr<Tokenizer> FromGguf(const gguf::Metadata& metadata);
  virtual ~Tokenizer() = default;

  // Tokenizes `text`. With `add_special`, BOS/EOS are added as the metadata says
  // (tokenizer.ggml.add_bos_token / add_eos_token). With `parse_special`, the text of special and
  // control tokens (e.g. "<|im_start|>") becomes that token instead of being tokenized as text.
  virtual std::vector<TokenId> Encode(std::string_view text, bool add_special,
                                      bool parse_special) const = 0;
  // The bytes a token stands for (byte-fallback tokens become their byte; SentencePiece's "▁"
  // becomes a space; byte-level BPE symbols become their bytes). Special/control tokens render as
  // their text only with `render_special`, otherwise as "".
  virtual std::string TokenToPiece(TokenId id, bool render_special) const = 0;
  // Detokenizes as llama.cpp does (e.g. dropping the leading space SentencePiece added).
  virtual std::string Decode(std::span<const TokenId> ids, bool render_special) const = 0;

  virtual int32_t n_vocab() const = 0;
  virtual TokenId bos() const = 0;  // -1 when the vocabulary has none
  virtual TokenId eos() const = 0;
  virtual bool add_bos() const = 0;
  virtual bool add_eos() const = 0;
  // Decode drops one leading space of the first token's piece (SentencePiece's space prefix).
  virtual bool add_space_prefix() const { return false; }
  // Decode removes spaces before punctuation and contractions (" ," -> ",", " 's" -> "'s").
  virtual bool clean_spaces() const { return false; }
  // End of generation: EOS, EOT and similar tokens.
  virtual bool IsEndOfGeneration(TokenId id) const = 0;
  virtual bool IsValid(TokenId id) const { return id >= 0 && id < n_vocab(); }
};

// The space clean-up Decode applies when clean_spaces() (llama.cpp's clean_up_tokenization_spaces).
void CleanTokenizationSpaces(std::string& text);

// Turns a stream of token ids into text that never ends inside a UTF-8 sequence: bytes of an
// incomplete character are held back until the character completes (or Flush is called).
// The concatenated output equals Decode() of all ids (malformed UTF-8 becomes U+FFFD); to apply
// Decode's space clean-up, a few bytes after a space are held back until they are known.
class StreamDecoder {
 public:
  StreamDecoder(const Tokenizer& tokenizer, bool render_special = false);
  // Returns the text that became complete with this token (possibly "").
  std::string Push(TokenId id);
  // Returns held-back bytes (an incomplete sequence at end of stream is replaced by U+FFFD).
  std::string Flush();

 private:
  std::string Take(size_t n);

  const Tokenizer& tokenizer_;
  bool render_special_;
  bool first_ = true;
  std::string pending_;
};

}  // namespace dizuo
