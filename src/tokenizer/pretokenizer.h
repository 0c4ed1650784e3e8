// Byte-level BPE pre-tokenizers: the regex sequences that `tokenizer.ggml.pre` selects, run with
// PCRE2 (UTF, Unicode properties, JIT) with the splitting semantics of llama.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dizuo::tok {

// What a `tokenizer.ggml.pre` name implies (llama.cpp applies these defaults per name).
struct PreTokenizerSpec {
  std::vector<std::string_view> names;  // every name that selects this behaviour
  std::vector<std::string_view> regexes;
  bool ignore_merges = false;  // a word that is a whole token is emitted without merging
  bool add_bos = false;        // default for tokenizer.ggml.add_bos_token
  bool clean_spaces = true;    // detokenizer removes spaces before punctuation / contractions
  bool no_bos = false;         // the vocabulary has no BOS token
};

// The spec for `name` ("" = key absent, which llama.cpp treats as "default"); nullptr if unknown.
const PreTokenizerSpec* FindPreTokenizer(std::string_view name);
// All known names, comma-separated (for error messages).
std::string KnownPreTokenizerNames();

// A byte range [begin, end) of the text.
using Span = std::pair<uint32_t, uint32_t>;

// Splits text into words by applying each regex in turn to every piece the previous regexes left:
// both the matches and the text between them become pieces (llama.cpp's unicode_regex_split).
class RegexSplitter {
 public:
  explicit RegexSplitter(const std::vector<std::string_view>& regexes);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // `subject` must be valid UTF-8. Replaces `words` with the pieces, in order, covering `subject`.
  void Split(std::string_view subject, std::vector<Span>& words) const;

 private:
  struct Compiled;
  std::vector<std::unique_ptr<Compiled>> compiled_;
};

// Rewrites a pattern for PCRE2 so that \s and \S mean what they mean in llama.cpp (its whitespace
// set includes U+0085, which PCRE2's \s lacks). Exposed for tests.
std::string TranslatePattern(std::string_view pattern);

}  // namespace dizuo::tok
