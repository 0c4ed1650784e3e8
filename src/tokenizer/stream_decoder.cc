#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace dizuo {
namespace {

// Clean-up rules look at most 3 bytes past a space, so text can be cut where none of the 3 bytes
// before the cut is a space: cleaning both parts separately then equals cleaning the whole.
size_t CleanSafeCut(std::string_view text, size_t limit) {
  for (size_t cut = limit; cut > 0; --cut) {
    if (cut < text.size() && (static_cast<uint8_t>(text[cut]) & 0xC0) == 0x80) continue;
    const size_t from = cut >= 3 ? cut - 3 : 0;
    if (text.substr(from, cut - from).find(' ') == std::string_view::npos) return cut;
  }
  return 0;
}

}  // namespace

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool render_special)
    : tokenizer_(tokenizer), render_special_(render_special) {}

std::string StreamDecoder::Take(size_t n) {
  std::string part = pending_.substr(0, n);
  pending_.erase(0, n);
  if (tokenizer_.clean_spaces()) CleanTokenizationSpaces(part);
  return tok::ToValidUtf8(part);
}

std::string StreamDecoder::Push(TokenId id) {
  std::string piece = tokenizer_.TokenToPiece(id, render_special_);
  if (first_ && tokenizer_.add_space_prefix() && !piece.empty() && piece[0] == ' ') {
    piece.erase(0, 1);
  }
  first_ = false;
  pending_ += piece;
  size_t complete = pending_.size() - tok::IncompleteUtf8Tail(pending_);
  if (tokenizer_.clean_spaces()) complete = CleanSafeCut(pending_, complete);
  return Take(complete);
}

std::string StreamDecoder::Flush() {
  const size_t tail = tok::IncompleteUtf8Tail(pending_);
  std::string out = Take(pending_.size() - tail);
  if (tail > 0) {
    pending_.clear();
    out += "\xEF\xBF\xBD";
  }
  return out;
}

}  // namespace dizuo
