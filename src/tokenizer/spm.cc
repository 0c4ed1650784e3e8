#include <algorithm>

#include <fmt/format.h>

#include "tokenizer/encoders.h"
#include "tokenizer/unicode.h"

namespace dizuo::tok {
namespace {

struct Symbol {
  int32_t prev, next;
  uint32_t start, n;
};

struct Bigram {
  float score;
  int32_t left, right;
  uint32_t size;
};

// Heap order: highest score on top, then the leftmost pair.
struct BigramLess {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

SpmEncoder::SpmEncoder(const Vocab& vocab) : vocab_(vocab) {
  for (int b = 0; b < 256; ++b) {
    TokenId id = vocab.Find(fmt::format("<0x{:02X}>", b));
    if (id == -1) id = vocab.Find(std::string(1, static_cast<char>(b)));
    // llama.cpp throws when a byte has no token at all; fall back to the unknown token.
    byte_tokens_[b] = id != -1 ? id : vocab.unk;
  }
  for (size_t i = 0; i < vocab.texts.size(); ++i) {
    const std::string_view token = vocab.texts[i];
    uint32_t prev = 0;
    for (size_t pos = 0; pos < token.size();) {
      const size_t len = std::min(Utf8SeqLen(static_cast<uint8_t>(token[pos])), token.size() - pos);
      const uint32_t cur = PackChar(token, pos, len);
      if (pos > 0) joined_pairs_.insert((static_cast<uint64_t>(prev) << 32) | cur);
      prev = cur;
      pos += len;
    }
  }
}

uint32_t SpmEncoder::PackChar(std::string_view text, size_t pos, size_t len) {
  uint32_t packed = 0;
  for (size_t k = 0; k < len; ++k) packed = (packed << 8) | static_cast<uint8_t>(text[pos + k]);
  return packed;  // injective: the (non-zero) lead byte of a multi-byte character comes first
}

void SpmEncoder::Encode(std::string_view text, std::vector<TokenId>& out) const {
  size_t piece_start = 0;
  uint32_t prev = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = std::min(Utf8SeqLen(static_cast<uint8_t>(text[pos])), text.size() - pos);
    const uint32_t cur = PackChar(text, pos, len);
    if (pos > 0 && !joined_pairs_.contains((static_cast<uint64_t>(prev) << 32) | cur)) {
      EncodePiece(text.substr(piece_start, pos - piece_start), out);
      piece_start = pos;
    }
    prev = cur;
    pos += len;
  }
  EncodePiece(text.substr(piece_start), out);
}

void SpmEncoder::EncodePiece(std::string_view text, std::vector<TokenId>& out) const {
  if (text.empty()) return;
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (uint32_t offset = 0; offset < text.size();) {
    const auto n = static_cast<uint32_t>(
        std::min<size_t>(Utf8SeqLen(static_cast<uint8_t>(text[offset])), text.size() - offset));
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({index - 1, offset + n == text.size() ? -1 : index + 1, offset, n});
    offset += n;
  }

  std::vector<Bigram> heap;
  heap.reserve(symbols.size());
  const auto try_add = [&](int32_t left, int32_t right) {
    if (left == -1 || right == -1) return;
    const uint32_t size = symbols[left].n + symbols[right].n;
    const TokenId id = vocab_.Find(text.substr(symbols[left].start, size));
    if (id == -1) return;
    heap.push_back({vocab_.scores[id], left, right, size});
    std::push_heap(heap.begin(), heap.end(), BigramLess{});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_add(i - 1, i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), BigramLess{});
    const Bigram bigram = heap.back();
    heap.pop_back();
    Symbol& left = symbols[bigram.left];
    Symbol& right = symbols[bigram.right];
    // Stale: one side was merged away or grew since the pair was queued.
    if (left.n == 0 || right.n == 0 || left.n + right.n != bigram.size) continue;
    left.n += right.n;
    right.n = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = bigram.left;
    try_add(left.prev, bigram.left);
    try_add(bigram.left, left.next);
  }

  // A merged symbol is always a token (only tokens are merged into); a symbol that is not a
  // token is a single character, emitted byte by byte.
  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    const TokenId id = vocab_.Find(text.substr(s.start, s.n));
    if (id != -1) {
      out.push_back(id);
      continue;
    }
    for (uint32_t k = 0; k < s.n; ++k) {
      const TokenId byte_id = byte_tokens_[static_cast<uint8_t>(text[s.start + k])];
      if (byte_id != -1) out.push_back(byte_id);
    }
  }
}

}  // namespace dizuo::tok
