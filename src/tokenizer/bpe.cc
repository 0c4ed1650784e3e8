#include <algorithm>

#include "tokenizer/encoders.h"
#include "tokenizer/unicode.h"

namespace dizuo::tok {
namespace {

// Heap order: lowest rank on top, then the leftmost pair.
struct BigramGreater {
  bool operator()(const BpeEncoder::Scratch::Bigram& a,
                  const BpeEncoder::Scratch::Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

BpeEncoder::BpeEncoder(const Vocab& vocab) : vocab_(vocab) {
  const auto intern = [&](const std::string& text) -> int32_t {
    const TokenId id = vocab.Find(text);
    if (id != -1) return id;
    const auto next = static_cast<int32_t>(vocab.size() + extra_parts_.size());
    return extra_parts_.emplace(text, next).first->second;
  };
  merges_.reserve(vocab.merges.size() * 2);
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const auto& [left, right] = vocab.merges[rank];
    // An earlier duplicate keeps its (lower) rank, as in llama.cpp.
    merges_.emplace(Key(intern(left), intern(right)),
                    Merge{static_cast<int32_t>(rank), intern(left + right)});
  }
  const auto& byte_to_unicode = ByteToUnicode();
  for (int b = 0; b < 256; ++b) {
    const std::string& encoded = byte_to_unicode[b];
    const TokenId id = vocab.Find(encoded);
    if (id != -1) {
      byte_parts_[b] = id;
    } else {
      const auto it = extra_parts_.find(encoded);
      byte_parts_[b] = it == extra_parts_.end() ? -1 : it->second;
    }
    // llama.cpp's fallback for a symbol that is not a token: each byte of its encoded text
    // looked up as a one-byte token; bytes without one are dropped.
    for (char c : encoded) {
      const TokenId t = vocab.Find(std::string_view(&c, 1));
      if (t != -1) byte_fallback_[b].push_back(t);
    }
  }
}

void BpeEncoder::AddBigram(int32_t left, int32_t right, Scratch& s) const {
  if (left == -1 || right == -1) return;
  const int32_t a = s.symbols[left].part;
  const int32_t b = s.symbols[right].part;
  if (a < 0 || b < 0) return;
  const auto it = merges_.find(Key(a, b));
  if (it == merges_.end()) return;
  s.heap.push_back(
      {it->second.rank, left, right, it->second.result, s.symbols[left].n + s.symbols[right].n});
  std::push_heap(s.heap.begin(), s.heap.end(), BigramGreater{});
}

void BpeEncoder::EncodeWord(std::string_view word, Scratch& s, std::vector<TokenId>& out) const {
  if (word.empty()) return;
  if (vocab_.ignore_merges) {
    s.encoded.clear();
    const auto& byte_to_unicode = ByteToUnicode();
    for (char c : word) s.encoded += byte_to_unicode[static_cast<uint8_t>(c)];
    const TokenId id = vocab_.Find(s.encoded);
    if (id != -1) {
      out.push_back(id);
      return;
    }
  }
  s.symbols.clear();
  s.heap.clear();
  const auto n = static_cast<int32_t>(word.size());
  for (int32_t i = 0; i < n; ++i) {
    s.symbols.push_back({i - 1, i + 1 == n ? -1 : i + 1, static_cast<uint32_t>(i), 1,
                         byte_parts_[static_cast<uint8_t>(word[i])]});
  }
  for (int32_t i = 1; i < n; ++i) AddBigram(i - 1, i, s);

  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), BigramGreater{});
    const Scratch::Bigram bigram = s.heap.back();
    s.heap.pop_back();
    Scratch::Symbol& left = s.symbols[bigram.left];
    Scratch::Symbol& right = s.symbols[bigram.right];
    // Stale: one side was merged away or grew since the pair was queued.
    if (left.n == 0 || right.n == 0 || left.n + right.n != bigram.size) continue;
    left.n += right.n;
    left.part = bigram.result;
    right.n = 0;
    left.next = right.next;
    if (right.next >= 0) s.symbols[right.next].prev = bigram.left;
    AddBigram(left.prev, bigram.left, s);
    AddBigram(bigram.left, left.next, s);
  }

  for (int32_t i = 0; i != -1; i = s.symbols[i].next) {
    const Scratch::Symbol& sym = s.symbols[i];
    if (sym.part >= 0 && sym.part < vocab_.size()) {
      out.push_back(sym.part);
      continue;
    }
    for (uint32_t k = 0; k < sym.n; ++k) {
      const auto& fallback = byte_fallback_[static_cast<uint8_t>(word[sym.start + k])];
      out.insert(out.end(), fallback.begin(), fallback.end());
    }
  }
}

}  // namespace dizuo::tok
