// Times dizuo's Tokenizer::Encode on a text file (load time excluded).
//
//   tokenizer-throughput VOCAB.gguf TEXT [ITERATIONS] [IDS_OUT]
//
// Prints one JSON object: {"bytes", "tokens", "seconds": [per iteration]}. With IDS_OUT, writes
// the ids (one per line) there, for comparison with another tokenizer.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s VOCAB.gguf TEXT [ITERATIONS] [IDS_OUT]\n", argv[0]);
    return 2;
  }
  try {
    const auto tokenizer = dizuo::Tokenizer::FromGguf(dizuo::gguf::File::Open(argv[1]).metadata());
    std::ifstream in(argv[2], std::ios::binary);
    if (!in) dizuo::Fail("cannot read {}", argv[2]);
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();
    const int iterations = argc > 3 ? std::atoi(argv[3]) : 3;
    std::vector<double> seconds;
    std::vector<dizuo::TokenId> ids;
    for (int i = 0; i < iterations; ++i) {
      const auto start = std::chrono::steady_clock::now();
      ids = tokenizer->Encode(text, false, false);
      seconds.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    if (argc > 4) {
      std::ofstream out(argv[4]);
      for (dizuo::TokenId id : ids) out << id << '\n';
    }
    fmt::print("{{\"bytes\": {}, \"tokens\": {}, \"seconds\": [{}]}}\n", text.size(), ids.size(),
               fmt::join(seconds, ", "));
  } catch (const dizuo::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
