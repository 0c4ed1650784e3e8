#include "model/synthetic_vocab.h"

#include <cstdio>
#include <map>
#include <set>
#include <string_view>
#include <utility>

#include "core/error.h"

namespace dizuo {
namespace {

// The training text: ordinary English, so that common words and subwords become pieces. Changing
// it changes every synthetic model (their sha256 goldens pin it).
constexpr std::string_view kTrainingText = R"(
The small town stood by the river, and every morning the people of the town walked down to the
water. They talked about the weather, the price of bread, and the news from the city. Some of them
worked in the mill, some in the fields, and some in the little shops along the main street. The
children went to school in the old stone house near the church, where a teacher named Anna taught
them to read, to write and to count. In the afternoon they played in the park, and in the evening
they helped their parents at home.
One day a stranger came to the town. He carried a heavy bag and a long wooden box. Nobody knew
where he had come from or why he had come. He asked for a room at the inn and paid with a gold
coin. The next morning he opened the box in the market square. Inside there was a machine made of
brass and glass, with many small wheels and a bright lamp. When he turned a handle, the machine
began to sing, and the lamp changed its color from blue to green to red.
The people gathered around him. "What is it?" asked a boy. "It is a machine that remembers
music," said the stranger. "Every song that it hears, it can sing again, for a hundred years."
The children laughed and clapped their hands. The old men shook their heads, but they stayed to
listen. The women brought bread and cheese, and soon the whole town was in the square, eating,
talking and singing with the machine.
Computers are machines that follow instructions. A program is a list of instructions, and a
programmer is a person who writes programs. Modern computers can perform billions of operations
in a second. They store numbers, text, images and sound as patterns of bits. A language model is a
program that reads text and predicts the next word. It learns from a large amount of text, and it
can answer questions, translate sentences, write stories and help people with their work.
The weather was cold in the winter and warm in the summer. In the spring the trees were green
and the fields were full of flowers. In the autumn the leaves turned yellow and brown and fell to
the ground. The farmers worked hard all year, and at the end of the year they counted their
harvest: 12 carts of wheat, 7 carts of apples and 3 barrels of honey. There were 365 days in the
year, 24 hours in a day and 60 minutes in an hour.
She opened the window and looked at the sky. The sun was shining, the birds were singing, and the
air smelled of fresh grass. It was going to be a beautiful day. She decided to take a walk to the
hill, where she could see the whole valley, the river, the town and the mountains far away.
"Would you like to come with me?" she asked her brother. "I would love to," he said, "but I have
to finish my work first. I will meet you there in an hour." She smiled, took her hat and her
book, and went out into the bright morning.
)";

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

using Symbols = std::vector<std::string>;

// Splits UTF-8 text into characters (the training text is valid UTF-8).
Symbols Utf8Chars(std::string_view s) {
  Symbols out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    out.emplace_back(s.substr(i, n));
    i += n;
  }
  return out;
}

// GPT-2's byte-level alphabet: printable bytes map to themselves, the others to U+0100 onwards.
std::string ByteSymbol(uint8_t b) {
  const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
  uint32_t cp = b;
  if (!printable) {
    uint32_t index = 0;
    for (uint32_t x = 0; x < b; ++x) {
      const bool p = (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
      if (!p) ++index;
    }
    cp = 0x100 + index;
  }
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

struct Merge {
  std::string left, right;
};

// BPE training: repeatedly merges the most frequent adjacent pair (ties: the smallest pair) until
// `max_merges` or every word is one symbol (so every word of the text becomes a piece).
// Deterministic: ordered containers only.
std::vector<Merge> TrainMerges(const std::map<Symbols, int>& word_counts, int max_merges) {
  std::vector<std::pair<Symbols, int>> words(word_counts.begin(), word_counts.end());
  std::vector<Merge> merges;
  while (static_cast<int>(merges.size()) < max_merges) {
    std::map<std::pair<std::string, std::string>, int> pairs;
    for (const auto& [symbols, count] : words) {
      for (size_t i = 0; i + 1 < symbols.size(); ++i) pairs[{symbols[i], symbols[i + 1]}] += count;
    }
    const std::pair<std::string, std::string>* best = nullptr;
    int best_count = 0;
    for (const auto& [pair, count] : pairs) {
      if (count > best_count) {
        best = &pair;
        best_count = count;
      }
    }
    if (best == nullptr) break;
    const Merge merge{best->first, best->second};
    for (auto& [symbols, count] : words) {
      Symbols merged;
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == merge.left && symbols[i + 1] == merge.right) {
          merged.push_back(merge.left + merge.right);
          ++i;
        } else {
          merged.push_back(symbols[i]);
        }
      }
      symbols = std::move(merged);
    }
    merges.push_back(merge);
  }
  return merges;
}

class VocabBuilder {
 public:
  explicit VocabBuilder(SyntheticVocab& vocab) : vocab_(vocab) {}
  // Adds a token unless its text exists; returns its id (or -1 when it existed).
  int32_t Add(std::string text, float score, TokenType type) {
    if (!seen_.insert(text).second) return -1;
    vocab_.tokens.push_back(std::move(text));
    vocab_.scores.push_back(score);
    vocab_.types.push_back(static_cast<int32_t>(type));
    return static_cast<int32_t>(vocab_.tokens.size() - 1);
  }
  int size() const { return static_cast<int>(vocab_.tokens.size()); }
  // Pads to `n_vocab` with filler pieces that no merge path reaches.
  void PadTo(int n_vocab, std::string_view prefix, std::string_view suffix) {
    for (int i = 0; size() < n_vocab; ++i) {
      Add(fmt::format("{}{}{}", prefix, i, suffix), -1e6f - static_cast<float>(i),
          TokenType::kNormal);
    }
  }

 private:
  SyntheticVocab& vocab_;
  std::set<std::string> seen_;
};

void CheckVocabSize(int n_vocab) {
  if (n_vocab < kMinSyntheticVocab) {
    Fail("vocabulary size {} is too small for the synthetic tokenizer (at least {})", n_vocab,
         kMinSyntheticVocab);
  }
}

std::vector<std::string_view> SplitOnWhitespace(std::string_view text) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n')) ++i;
    const size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\n') ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  return words;
}

bool IsLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Roughly the qwen2 pre-tokenizer: " word", single digits, " punctuation", newline runs. Merges
// learned within these chunks are valid whatever the exact pre-tokenizer.
std::vector<std::string> BpeChunks(std::string_view text) {
  std::vector<std::string> chunks;
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    if (text[i] == '\n') {
      while (i < text.size() && text[i] == '\n') ++i;
    } else if (IsDigit(text[i])) {
      ++i;
    } else {
      if (text[i] == ' ' && i + 1 < text.size() && text[i + 1] != ' ' && text[i + 1] != '\n') ++i;
      if (i < text.size() && IsLetter(text[i])) {
        while (i < text.size() && IsLetter(text[i])) ++i;
      } else {
        while (i < text.size() && !IsLetter(text[i]) && !IsDigit(text[i]) && text[i] != ' ' &&
               text[i] != '\n') {
          ++i;
        }
        if (i == start) ++i;
      }
    }
    chunks.emplace_back(text.substr(start, i - start));
  }
  return chunks;
}

}  // namespace

SyntheticVocab BuildSpmVocab(int n_vocab, bool gemma) {
  CheckVocabSize(n_vocab);
  SyntheticVocab vocab;
  VocabBuilder b(vocab);
  if (gemma) {
    vocab.pad = b.Add("<pad>", 0, TokenType::kControl);
    vocab.eos = b.Add("<eos>", 0, TokenType::kControl);
    vocab.bos = b.Add("<bos>", 0, TokenType::kControl);
    vocab.unk = b.Add("<unk>", 0, TokenType::kUnknown);
    vocab.start_of_turn = b.Add("<start_of_turn>", 0, TokenType::kControl);
    vocab.end_of_turn = b.Add("<end_of_turn>", 0, TokenType::kControl);
  } else {
    vocab.unk = b.Add("<unk>", 0, TokenType::kUnknown);
    vocab.bos = b.Add("<s>", 0, TokenType::kControl);
    vocab.eos = b.Add("</s>", 0, TokenType::kControl);
  }
  for (int byte = 0; byte < 256; ++byte)
    b.Add(fmt::format("<0x{:02X}>", byte), 0, TokenType::kByte);

  std::map<Symbols, int> word_counts;
  for (std::string_view word : SplitOnWhitespace(kTrainingText)) {
    ++word_counts[Utf8Chars(std::string(kSpace) + std::string(word))];
  }
  // Single characters: the space symbol, printable ASCII and whatever else the text holds.
  std::set<std::string> chars{std::string(kSpace)};
  for (char c = 0x21; c < 0x7F; ++c) chars.insert(std::string(1, c));
  for (const auto& [symbols, count] : word_counts) chars.insert(symbols.begin(), symbols.end());

  const int budget = n_vocab - b.size() - static_cast<int>(chars.size());
  const std::vector<Merge> merges = TrainMerges(word_counts, std::max(budget, 0));
  // SentencePiece merging takes the highest-scoring piece first: score pieces by merge order.
  int rank = 0;
  for (const Merge& m : merges)
    b.Add(m.left + m.right, -static_cast<float>(rank++), TokenType::kNormal);
  for (const std::string& c : chars) b.Add(c, -static_cast<float>(rank++), TokenType::kNormal);
  DZ_ASSERT(b.size() <= n_vocab);
  b.PadTo(n_vocab, "<filler_", ">");
  return vocab;
}

SyntheticVocab BuildBpeVocab(int n_vocab) {
  CheckVocabSize(n_vocab);
  SyntheticVocab vocab;
  VocabBuilder b(vocab);
  for (int byte = 0; byte < 256; ++byte)
    b.Add(ByteSymbol(static_cast<uint8_t>(byte)), 0, TokenType::kNormal);

  std::map<Symbols, int> word_counts;
  for (const std::string& chunk : BpeChunks(kTrainingText)) {
    Symbols symbols;
    for (char c : chunk) symbols.push_back(ByteSymbol(static_cast<uint8_t>(c)));
    ++word_counts[symbols];
  }
  constexpr int kSpecials = 3;
  const std::vector<Merge> merges = TrainMerges(word_counts, n_vocab - b.size() - kSpecials);
  for (const Merge& m : merges) {
    vocab.merges.push_back(m.left + " " + m.right);
    b.Add(m.left + m.right, 0, TokenType::kNormal);
  }
  vocab.eos = vocab.bos = vocab.pad = b.Add("<|endoftext|>", 0, TokenType::kControl);
  vocab.im_start = b.Add("<|im_start|>", 0, TokenType::kControl);
  vocab.im_end = b.Add("<|im_end|>", 0, TokenType::kControl);
  DZ_ASSERT(b.size() <= n_vocab);
  b.PadTo(n_vocab, "<|extra_", "|>");
  return vocab;
}

}  // namespace dizuo
