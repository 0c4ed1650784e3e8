#include <iostream>
#include <iterator>
#include <sstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace dizuo::cli {
namespace {

std::string ReadAll(std::istream& in) {
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& path) {
  const gguf::File file = gguf::File::Open(path);
  return Tokenizer::FromGguf(file.metadata());
}

// Shows a piece with control characters escaped, so every token is visible on one line.
std::string Printable(const std::string& piece) {
  std::string out;
  for (unsigned char c : piece) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Parses token ids written as a JSON array or as integers separated by whitespace or commas.
std::vector<TokenId> ParseIds(const std::string& text) {
  std::vector<TokenId> ids;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!json.is_array()) Fail("input is not a valid JSON array of token ids");
    for (const auto& item : json) {
      if (!item.is_number_integer()) Fail("JSON array item {} is not an integer", item.dump());
      const int64_t id = item.get<int64_t>();
      if (id < INT32_MIN || id > INT32_MAX) Fail("token id {} is out of range", id);
      ids.push_back(static_cast<TokenId>(id));
    }
    return ids;
  }
  std::string word;
  std::istringstream stream(text);
  while (std::getline(stream, word, ',')) {
    std::istringstream words(word);
    std::string token;
    while (words >> token) {
      size_t used = 0;
      long long id = 0;
      try {
        id = std::stoll(token, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != token.size()) Fail("'{}' is not a token id (expected an integer)", token);
      if (id < INT32_MIN || id > INT32_MAX) Fail("token id {} is out of range", id);
      ids.push_back(static_cast<TokenId>(id));
    }
  }
  return ids;
}

}  // namespace

Command AddTokenize(CLI::App& app) {
  struct Options {
    std::string model;
    bool no_bos = false;
    bool special = false;
    bool json = false;
    bool ids = false;
  };
  auto opt = std::make_shared<Options>();
  app.description(
      "Tokenize text read from stdin. Prints one 'id -> piece' line per token, or only the ids.");
  app.add_option("-m,--model", opt->model, "GGUF file (a vocab-only file is enough)")->required();
  app.add_flag("--no-bos", opt->no_bos, "Do not add the BOS/EOS tokens the tokenizer would add");
  app.add_flag("--special", opt->special,
               "Parse special/control token text (e.g. <|im_start|>) as those tokens");
  app.add_flag("--json", opt->json, "Print only a JSON array of token ids");
  app.add_flag("--ids", opt->ids, "Print only the token ids, space-separated");
  return [opt] {
    const auto tokenizer = LoadTokenizer(opt->model);
    const std::string text = ReadAll(std::cin);
    const std::vector<TokenId> ids = tokenizer->Encode(text, !opt->no_bos, opt->special);
    if (opt->json) {
      fmt::print("{}\n", nlohmann::json(ids).dump());
    } else if (opt->ids) {
      for (size_t i = 0; i < ids.size(); ++i) fmt::print("{}{}", i ? " " : "", ids[i]);
      fmt::print("\n");
    } else {
      for (TokenId id : ids) {
        fmt::print("{:>6} -> '{}'\n", id, Printable(tokenizer->TokenToPiece(id, true)));
      }
    }
    return 0;
  };
}

Command AddDetokenize(CLI::App& app) {
  struct Options {
    std::string model;
    bool special = false;
  };
  auto opt = std::make_shared<Options>();
  app.description(
      "Read token ids from stdin (a JSON array, or integers separated by spaces or commas) and "
      "print the text they stand for.");
  app.add_option("-m,--model", opt->model, "GGUF file (a vocab-only file is enough)")->required();
  app.add_flag("--special", opt->special, "Render special/control tokens as their text");
  return [opt] {
    const auto tokenizer = LoadTokenizer(opt->model);
    const std::vector<TokenId> ids = ParseIds(ReadAll(std::cin));
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!tokenizer->IsValid(ids[i])) {
        Fail("token id {} (position {}) is out of range: the vocabulary has {} tokens", ids[i], i,
             tokenizer->n_vocab());
      }
    }
    fmt::print("{}", tokenizer->Decode(ids, opt->special));
    std::fflush(stdout);
    return 0;
  };
}

}  // namespace dizuo::cli
