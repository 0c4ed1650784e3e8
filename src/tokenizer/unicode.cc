#include "tokenizer/unicode.h"

namespace dizuo::tok {
namespace {

constexpr uint32_t kReplacement = 0xFFFD;

bool IsCont(uint8_t b) { return (b & 0xC0) == 0x80; }

}  // namespace

void AppendUtf8(uint32_t cpt, std::string& out) {
  if (cpt <= 0x7F) {
    out.push_back(static_cast<char>(cpt));
  } else if (cpt <= 0x7FF) {
    out.push_back(static_cast<char>(0xC0 | (cpt >> 6)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0xFFFF) {
    out.push_back(static_cast<char>(0xE0 | (cpt >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0x10FFFF) {
    out.push_back(static_cast<char>(0xF0 | (cpt >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else {
    AppendUtf8(kReplacement, out);
  }
}

uint32_t DecodeLenient(std::string_view text, size_t& pos) {
  const auto at = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const size_t n = text.size();
  const uint8_t b0 = at(pos);
  if (b0 < 0x80) {
    pos += 1;
    return b0;
  }
  if ((b0 & 0x40) == 0) {  // stray continuation byte
    pos += 1;
    return kReplacement;
  }
  if ((b0 & 0x20) == 0) {
    if (pos + 1 < n && IsCont(at(pos + 1))) {
      const uint32_t cpt = ((b0 & 0x1Fu) << 6) | (at(pos + 1) & 0x3Fu);
      pos += 2;
      return cpt;
    }
  } else if ((b0 & 0x10) == 0) {
    if (pos + 2 < n && IsCont(at(pos + 1)) && IsCont(at(pos + 2))) {
      const uint32_t cpt =
          ((b0 & 0x0Fu) << 12) | ((at(pos + 1) & 0x3Fu) << 6) | (at(pos + 2) & 0x3Fu);
      pos += 3;
      return cpt;
    }
  } else if ((b0 & 0x08) == 0) {
    if (pos + 3 < n && IsCont(at(pos + 1)) && IsCont(at(pos + 2)) && IsCont(at(pos + 3))) {
      const uint32_t cpt = ((b0 & 0x07u) << 18) | ((at(pos + 1) & 0x3Fu) << 12) |
                           ((at(pos + 2) & 0x3Fu) << 6) | (at(pos + 3) & 0x3Fu);
      pos += 4;
      return cpt;
    }
  }
  pos += 1;
  return kReplacement;
}

bool IsStrictUtf8(std::string_view text) {
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t chunk = 0;
      for (int k = 0; k < 8; ++k) chunk |= static_cast<uint64_t>(static_cast<uint8_t>(text[i + k]));
      if (chunk & 0x80) break;
      i += 8;
    }
    if (i >= n) break;
    const uint8_t b0 = static_cast<uint8_t>(text[i]);
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cpt = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2, cpt = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3, cpt = b0 & 0x0F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4, cpt = b0 & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const uint8_t b = static_cast<uint8_t>(text[i + k]);
      if (!IsCont(b)) return false;
      cpt = (cpt << 6) | (b & 0x3F);
    }
    if ((len == 3 && cpt < 0x800) || (len == 4 && (cpt < 0x10000 || cpt > 0x10FFFF)) ||
        (cpt >= 0xD800 && cpt <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

CanonicalText Canonicalize(std::string_view text) {
  CanonicalText out;
  out.bytes.reserve(text.size() + 16);
  bool has_surrogate = false;
  for (size_t pos = 0; pos < text.size();) {
    const uint32_t cpt = DecodeLenient(text, pos);
    has_surrogate |= cpt >= 0xD800 && cpt <= 0xDFFF;
    AppendUtf8(cpt, out.bytes);
  }
  if (has_surrogate) {
    out.regex_subject = out.bytes;
    for (size_t pos = 0; pos < out.bytes.size();) {
      const size_t start = pos;
      const uint32_t cpt = DecodeLenient(out.bytes, pos);
      if (cpt >= 0xD800 && cpt <= 0xDFFF) out.regex_subject.replace(start, 3, "\xEF\xBF\xBD");
    }
  }
  return out;
}

const std::array<std::string, 256>& ByteToUnicode() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      AppendUtf8(printable ? b : next++, t[b]);
    }
    return t;
  }();
  return table;
}

int UnicodeToByte(uint32_t cpt) {
  static const std::array<int16_t, 324> table = [] {
    std::array<int16_t, 324> t;
    t.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      t[printable ? b : next++] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return cpt < table.size() ? table[cpt] : -1;
}

size_t IncompleteUtf8Tail(std::string_view text) {
  const size_t n = text.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const uint8_t b = static_cast<uint8_t>(text[n - back]);
    if (IsCont(b)) continue;
    size_t need = 0;
    if (b >= 0xC2 && b <= 0xDF) {
      need = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      need = 3;
    } else if (b >= 0xF0 && b <= 0xF4) {
      need = 4;
    }
    return need > back ? back : 0;
  }
  return 0;
}

std::string ToValidUtf8(std::string_view text) {
  if (IsStrictUtf8(text)) return std::string(text);
  std::string out;
  out.reserve(text.size() + 8);
  size_t i = 0;
  while (i < text.size()) {
    // Take the longest strictly valid sequence starting here, else one replaced byte.
    size_t len = Utf8SeqLen(static_cast<uint8_t>(text[i]));
    if (i + len <= text.size() && IsStrictUtf8(text.substr(i, len)) &&
        (len > 1 || static_cast<uint8_t>(text[i]) < 0x80)) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      AppendUtf8(kReplacement, out);
      ++i;
    }
  }
  return out;
}

}  // namespace dizuo::tok
