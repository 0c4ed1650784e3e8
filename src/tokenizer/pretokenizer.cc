#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <fmt/format.h>

#include "core/error.h"

namespace dizuo::tok {
namespace {

// The regexes are the ones the models' tokenizer.json files define, in the form llama.cpp runs
// them (case-insensitive groups spelled out; several patterns applied one after another).
constexpr std::string_view kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
constexpr std::string_view kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kJais2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1})";
constexpr std::string_view kCjk = "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+";
constexpr std::string_view kPoro = " ?[^(\\s|.,!?\u2026\u3002\uFF0C\u3001\u0964\u06D4\u060C)]+";
constexpr std::string_view kDeepseekLlmLetters =
    "\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293"
    "\u0295-\u02AF\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C"
    "\u038E-\u03A1\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5\u13A0"
    "-\u13F5\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77\u1D79-"
    "\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57\u1F59\u1F5B"
    "\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC\u1FD0-"
    "\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107\u210A-\u2113"
    "\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139\u213C-\u213F"
    "\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2\u2CF3"
    "\uA640-\uA66D\uA680-\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00"
    "-\uFB06\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A\U00010400-\U0001044F\U000104B0-"
    "\U000104D3\U000104D8-\U000104FB\U00010C80-\U00010CB2\U00010CC0-\U00010CF2\U000118A0-"
    "\U000118DF\U0001E900-\U0001E943]+";

const std::vector<PreTokenizerSpec>& Specs() {
  static const std::vector<PreTokenizerSpec> specs = [] {
    std::vector<PreTokenizerSpec> s;
    auto add = [&](std::vector<std::string_view> names, std::vector<std::string_view> regexes,
                   bool clean_spaces = true) -> PreTokenizerSpec& {
      s.push_back(PreTokenizerSpec{std::move(names), std::move(regexes)});
      s.back().clean_spaces = clean_spaces;
      return s.back();
    };
    add({"default", ""}, {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"});
    {
      auto& llama3 = add({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                          "midm-2.0", "lfm2", "jina-v5-nano"},
                         {kLlama3});
      llama3.ignore_merges = true;
      llama3.add_bos = true;
    }
    add({"dbrx", "smaug-bpe"}, {kLlama3});
    add({"jais-2"}, {kJais2});
    add({"chatglm-bpe"}, {kLlama3}).no_bos = true;
    {
      auto& glm = add({"glm4", "glm5"}, {kLlama3});
      glm.no_bos = true;
      glm.ignore_merges = true;
    }
    add({"deepseek-llm"},
        {"[\r\n]", kDeepseekLlmLetters,
         "\\s?[!-/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+", R"(\s+$)", kCjk,
         R"(\p{N}+)"},
        /*clean_spaces=*/false);
    add({"deepseek-coder"}, {"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kCjk, R"(\p{N})"},
        /*clean_spaces=*/false);
    add({"deepseek-v3"},
        {R"(\p{N}{1,3})", "[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+",
         R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
        /*clean_spaces=*/false);
    add({"falcon"}, {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"});
    add({"gpt-2", "mpt", "olmo", "jais", "exaone4", "phi-2", "jina-es", "jina-de", "gigachat",
         "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "jina-v1-en",
         "jina-v2-code", "roberta-bpe"},
        {kGpt2});
    add({"trillion", "granite-docling"}, {kGpt2}, /*clean_spaces=*/false);
    add({"starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"},
        {R"(\p{N})", kGpt2});
    add({"command-r", "smollm"}, {R"(\p{N})", kGpt2}, /*clean_spaces=*/false);
    add({"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"}, {kQwen2},
        /*clean_spaces=*/false);
    add({"stablelm2"}, {kQwen2});
    add({"poro-chat"}, {kPoro}, /*clean_spaces=*/false);
    add({"bloom", "gpt3-finnish"}, {kPoro});
    add({"viking"}, {kPoro, R"(\p{N})"}, /*clean_spaces=*/false);
    return s;
  }();
  return specs;
}

// llama.cpp's whitespace set: the six ASCII spaces, U+0085 and Unicode's Z characters.
constexpr std::string_view kWhitespaceMembers =
    R"(\t\n\x0B\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// One thread's PCRE2 scratch space, shared by every pattern (only the whole match is read).
struct MatchScratch {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
  pcre2_match_context* context = [this] {
    pcre2_match_context* c = pcre2_match_context_create(nullptr);
    if (c && stack) pcre2_jit_stack_assign(c, nullptr, stack);
    return c;
  }();
  ~MatchScratch() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(data);
  }
};

MatchScratch& Scratch() {
  thread_local MatchScratch scratch;
  if (!scratch.data || !scratch.context) Fail("out of memory for regex matching");
  return scratch;
}

}  // namespace

const PreTokenizerSpec* FindPreTokenizer(std::string_view name) {
  for (const auto& spec : Specs()) {
    for (std::string_view n : spec.names) {
      if (n == name) return &spec;
    }
  }
  return nullptr;
}

std::string KnownPreTokenizerNames() {
  std::string out;
  for (const auto& spec : Specs()) {
    for (std::string_view n : spec.names) {
      if (n.empty()) continue;
      if (!out.empty()) out += ", ";
      out += n;
    }
  }
  return out;
}

std::string TranslatePattern(std::string_view pattern) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 's') {
        out += in_class ? std::string(kWhitespaceMembers) : fmt::format("[{}]", kWhitespaceMembers);
      } else if (e == 'S') {
        DZ_ASSERT(!in_class);  // no supported pattern uses \S inside a class
        out += fmt::format("[^{}]", kWhitespaceMembers);
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
    } else if (c == ']' && in_class) {
      in_class = false;
    }
    out += c;
  }
  return out;
}

struct RegexSplitter::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() { pcre2_code_free(code); }
};

RegexSplitter::RegexSplitter(const std::vector<std::string_view>& regexes) {
  for (std::string_view regex : regexes) {
    const std::string pattern = TranslatePattern(regex);
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    auto compiled = std::make_unique<Compiled>();
    compiled->code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                      PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &error, &error_offset, nullptr);
    if (!compiled->code) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      Fail("cannot compile pre-tokenizer regex '{}' at offset {}: {}", regex, error_offset,
           reinterpret_cast<const char*>(message));
    }
    // JIT is an optimisation: without it (unsupported CPU) matching still works.
    pcre2_jit_compile(compiled->code, PCRE2_JIT_COMPLETE);
    compiled_.push_back(std::move(compiled));
  }
}

RegexSplitter::~RegexSplitter() = default;

void RegexSplitter::Split(std::string_view subject, std::vector<Span>& words) const {
  words.clear();
  if (subject.empty()) return;
  words.emplace_back(0, static_cast<uint32_t>(subject.size()));
  MatchScratch& scratch = Scratch();
  std::vector<Span> next;
  next.reserve(subject.size() / 4 + 4);
  const auto* base = reinterpret_cast<PCRE2_SPTR>(subject.data());
  for (const auto& compiled : compiled_) {
    next.clear();
    for (const Span& piece : words) {
      const uint32_t length = piece.second - piece.first;
      uint32_t offset = 0;   // search position within the piece
      uint32_t emitted = 0;  // end of the last piece emitted, within the piece
      while (offset < length) {
        const int rc = pcre2_match(compiled->code, base + piece.first, length, offset,
                                   PCRE2_NO_UTF_CHECK, scratch.data, scratch.context);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          PCRE2_UCHAR message[256];
          pcre2_get_error_message(rc, message, sizeof(message));
          Fail("pre-tokenizer regex failed: {}", reinterpret_cast<const char*>(message));
        }
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.data);
        const auto start = static_cast<uint32_t>(ovector[0]);
        const auto end = static_cast<uint32_t>(ovector[1]);
        if (end == start) {  // an empty match splits nothing; step over one character
          offset = start + 1;
          while (offset < length && (subject[piece.first + offset] & 0xC0) == 0x80) ++offset;
          continue;
        }
        if (start > emitted) next.emplace_back(piece.first + emitted, piece.first + start);
        next.emplace_back(piece.first + start, piece.first + end);
        emitted = offset = end;
      }
      if (emitted < length) next.emplace_back(piece.first + emitted, piece.second);
    }
    words.swap(next);
  }
}

}  // namespace dizuo::tok
