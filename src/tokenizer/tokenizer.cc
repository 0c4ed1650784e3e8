#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "tokenizer/encoders.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace dizuo {
namespace {

using tok::kAttrControl;
using tok::kAttrLStrip;
using tok::kAttrRStrip;
using tok::kAttrUnknown;

// A piece of the input: raw text [offset, offset + length), or one special token.
struct Fragment {
  TokenId token;  // -1 for raw text
  uint32_t offset;
  uint32_t length;
};

bool IsCSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// llama.cpp's detokenizer clean-up (clean_up_tokenization_spaces), done in place the same way.
void CleanSpaces(std::string& text) {
  auto pass = [&text](auto&& body) {
    const int32_t n = static_cast<int32_t>(text.size());
    int32_t total = n ? 1 : 0;
    for (int32_t i = 1; i < n; ++i) body(i, n, total);
    text.resize(total);
  };
  // " ?", " !", " .", " ,": drop the space.
  pass([&](int32_t i, int32_t, int32_t& total) {
    const char x = text[i];
    if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) --total;
    text[total++] = x;
  });
  // " ' ": drop both spaces.
  pass([&](int32_t& i, int32_t n, int32_t& total) {
    const char x = text[i];
    if (x == '\'' && i + 1 < n && text[i - 1] == ' ' && text[i + 1] == ' ') {
      --total;
      text[++i] = '\0';
    }
    text[total++] = x;
  });
  // " 's", " 'm", " 're", " 've": drop the space.
  pass([&](int32_t i, int32_t n, int32_t& total) {
    const char x = text[i];
    if (text[i - 1] == ' ' && x == '\'' && i + 1 < n) {
      const char x1 = text[i + 1];
      if (x1 == 's' || x1 == 'm') {
        --total;
      } else if (i + 2 < n &&
                 ((x1 == 'r' && text[i + 2] == 'e') || (x1 == 'v' && text[i + 2] == 'e'))) {
        --total;
      }
    }
    text[total++] = x;
  });
}

class VocabTokenizer final : public Tokenizer {
 public:
  explicit VocabTokenizer(tok::Vocab vocab) : vocab_(std::move(vocab)) {
    if (vocab_.type == tok::VocabType::kSpm) {
      spm_ = std::make_unique<tok::SpmEncoder>(vocab_);
    } else {
      bpe_ = std::make_unique<tok::BpeEncoder>(vocab_);
      splitter_ = std::make_unique<tok::RegexSplitter>(vocab_.pre->regexes);
      // The encoder keeps the merges as id pairs; their strings (two per merge, 64,784 merges in
      // Falcon's vocabulary) are not read again.
      std::vector<std::pair<std::string, std::string>>().swap(vocab_.merges);
    }
  }

  std::vector<TokenId> Encode(std::string_view text, bool add_special,
                              bool parse_special) const override {
    std::vector<TokenId> out;
    out.reserve(text.size() / 3 + 4);
    const std::vector<Fragment> fragments = Partition(text, parse_special);
    if (add_special && vocab_.add_bos) out.push_back(vocab_.bos);
    if (spm_) {
      bool prev_special = true;  // the first fragment gets the space prefix too
      std::string escaped;
      for (const Fragment& f : fragments) {
        if (f.token != -1) {
          out.push_back(f.token);
          prev_special = true;
          continue;
        }
        escaped.clear();
        if (vocab_.add_space_prefix && prev_special) escaped += "\xE2\x96\x81";
        for (char c : text.substr(f.offset, f.length)) {
          if (c == ' ') {
            escaped += "\xE2\x96\x81";
          } else {
            escaped.push_back(c);
          }
        }
        spm_->Encode(escaped, out);
        prev_special = false;
      }
    } else {
      tok::BpeEncoder::Scratch scratch;
      std::vector<tok::Span> words;
      for (const Fragment& f : fragments) {
        if (f.token != -1) {
          out.push_back(f.token);
          continue;
        }
        EncodeBpeText(text.substr(f.offset, f.length), scratch, words, out);
      }
    }
    if (add_special && vocab_.add_eos) out.push_back(vocab_.eos);
    return out;
  }

  std::string TokenToPiece(TokenId id, bool render_special) const override {
    CheckId(id);
    if (!render_special && vocab_.Is(id, kAttrControl | kAttrUnknown)) return "";
    return std::string(vocab_.pieces[id]);
  }

  std::string Decode(std::span<const TokenId> ids, bool render_special) const override {
    std::string text;
    bool strip_space = vocab_.add_space_prefix;
    for (TokenId id : ids) {
      CheckId(id);
      if (render_special || !vocab_.Is(id, kAttrControl | kAttrUnknown)) {
        const std::string_view piece = vocab_.pieces[id];
        const size_t skip = strip_space && !piece.empty() && piece[0] == ' ' ? 1 : 0;
        text.append(piece.substr(skip));
      }
      strip_space = false;
    }
    if (vocab_.clean_spaces) CleanSpaces(text);
    return text;
  }

  int32_t n_vocab() const override { return vocab_.size(); }
  TokenId bos() const override { return vocab_.bos; }
  TokenId eos() const override { return vocab_.eos; }
  bool add_bos() const override { return vocab_.add_bos; }
  bool add_eos() const override { return vocab_.add_eos; }
  bool add_space_prefix() const override { return vocab_.add_space_prefix; }
  bool clean_spaces() const override { return vocab_.clean_spaces; }
  bool IsEndOfGeneration(TokenId id) const override {
    return std::binary_search(vocab_.eog.begin(), vocab_.eog.end(), id);
  }

 private:
  void CheckId(TokenId id) const {
    if (!IsValid(id)) Fail("token id {} is out of range (vocabulary has {} tokens)", id, n_vocab());
  }

  // Splits `text` on the text of special tokens, longest first, as llama.cpp's
  // tokenizer_st_partition. Without `parse_special` only user-defined tokens are split out.
  std::vector<Fragment> Partition(std::string_view text, bool parse_special) const {
    std::vector<Fragment> fragments;
    if (text.empty()) return fragments;
    if (text.size() > UINT32_MAX) Fail("input text too long ({} bytes)", text.size());
    fragments.push_back({-1, 0, static_cast<uint32_t>(text.size())});
    std::vector<Fragment> next;
    for (TokenId special : vocab_.special_tokens) {
      if (!parse_special && vocab_.Is(special, kAttrControl | kAttrUnknown)) continue;
      const std::string_view needle = vocab_.texts[special];
      if (text.find(needle) == std::string_view::npos) continue;
      const bool lstrip = vocab_.Is(special, kAttrLStrip);
      const bool rstrip = vocab_.Is(special, kAttrRStrip);
      next.clear();
      for (const Fragment& f : fragments) {
        if (f.token != -1) {
          next.push_back(f);
          continue;
        }
        uint32_t base = f.offset;
        uint32_t length = f.length;
        while (true) {
          const size_t match = text.substr(0, base + length).find(needle, base);
          if (match == std::string_view::npos) {
            if (length > 0) next.push_back({-1, base, length});
            break;
          }
          uint32_t left = static_cast<uint32_t>(match) - base;
          if (lstrip) {
            while (left > 0 && IsCSpace(text[base + left - 1])) --left;
          }
          if (left > 0) next.push_back({-1, base, left});
          next.push_back({special, 0, 0});
          const auto after = static_cast<uint32_t>(match + needle.size());
          if (after >= base + length) break;
          uint32_t right_offset = after;
          uint32_t right_length = base + length - after;
          if (rstrip) {
            while (right_length > 0 && IsCSpace(text[right_offset])) ++right_offset, --right_length;
          }
          base = right_offset;
          length = right_length;
        }
      }
      fragments.swap(next);
    }
    return fragments;
  }

  void EncodeBpeText(std::string_view text, tok::BpeEncoder::Scratch& scratch,
                     std::vector<tok::Span>& words, std::vector<TokenId>& out) const {
    // The pre-tokenizer sees the text as llama.cpp does: decoded leniently and re-encoded.
    tok::CanonicalText canonical;
    std::string_view bytes = text;
    std::string_view subject = text;
    if (!tok::IsStrictUtf8(text)) {
      canonical = tok::Canonicalize(text);
      bytes = canonical.bytes;
      subject = canonical.regex_subject.empty() ? bytes : canonical.regex_subject;
    }
    splitter_->Split(subject, words);
    for (const tok::Span& word : words) {
      bpe_->EncodeWord(bytes.substr(word.first, word.second - word.first), scratch, out);
    }
  }

  tok::Vocab vocab_;
  std::unique_ptr<tok::SpmEncoder> spm_;
  std::unique_ptr<tok::BpeEncoder> bpe_;
  std::unique_ptr<tok::RegexSplitter> splitter_;
};

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::FromGguf(const gguf::Metadata& metadata) {
  return std::make_unique<VocabTokenizer>(tok::LoadVocab(metadata));
}

void CleanTokenizationSpaces(std::string& text) { CleanSpaces(text); }

}  // namespace dizuo
