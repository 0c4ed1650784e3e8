#include "tokenizer/vocab.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace dizuo::tok {
namespace {

constexpr std::string_view kModelKey = "tokenizer.ggml.model";
constexpr std::string_view kPreKey = "tokenizer.ggml.pre";
constexpr std::string_view kTokensKey = "tokenizer.ggml.tokens";
constexpr std::string_view kScoresKey = "tokenizer.ggml.scores";
constexpr std::string_view kTypesKey = "tokenizer.ggml.token_type";
constexpr std::string_view kMergesKey = "tokenizer.ggml.merges";

const gguf::Array& RequireArray(const gguf::Metadata& md, std::string_view key,
                                std::initializer_list<gguf::ValueType> types, size_t min_size) {
  const gguf::Value* value = md.Find(key);
  if (!value) Fail("tokenizer metadata: missing key '{}'", key);
  if (!value->is_array()) {
    Fail("tokenizer metadata: '{}' must be an array, found {}", key,
         gguf::ValueTypeName(value->type()));
  }
  const gguf::Array& array = value->AsArray(key);
  if (std::find(types.begin(), types.end(), array.type) == types.end()) {
    Fail("tokenizer metadata: '{}' has elements of type {}", key, gguf::ValueTypeName(array.type));
  }
  if (array.items.size() < min_size) {
    Fail("tokenizer metadata: '{}' has {} elements, fewer than the {} tokens", key,
         array.items.size(), min_size);
  }
  return array;
}

uint32_t AttrFromType(int64_t type) {
  switch (static_cast<TokenType>(type)) {
    case TokenType::kNormal:
      return kAttrNormal;
    case TokenType::kUnknown:
      return kAttrUnknown;
    case TokenType::kControl:
      return kAttrControl;
    case TokenType::kUserDefined:
      return kAttrUserDefined;
    case TokenType::kUnused:
      return kAttrUnused;
    case TokenType::kByte:
      return kAttrByte;
    default:
      return kAttrUndefined;
  }
}

// Reads an optional token id. -1 and 0xFFFFFFFF (as converters write it) mean "none". Any other
// id outside the vocabulary keeps the default, with a warning, as llama.cpp does: such files exist
// (and load there), so refusing them would refuse real models.
void ReadId(const gguf::Metadata& md, std::string_view key, int32_t n_vocab, TokenId& id) {
  const auto value = md.GetInt(key);
  if (!value) return;
  if (*value == -1 || *value == 0xFFFFFFFFll) {
    id = -1;
    return;
  }
  if (*value < 0 || *value >= n_vocab) {
    fmt::print(stderr,
               "dizuo: warning: tokenizer metadata '{}' = {} is out of range (vocabulary has {} "
               "tokens); using the default ({})\n",
               key, *value, n_vocab, id);
    return;
  }
  id = static_cast<TokenId>(*value);
}

uint8_t ByteTokenValue(std::string_view text) {
  // As llama.cpp: the two characters after "<0x" read as hex (strtol semantics).
  const std::string digits(text.size() > 3 ? text.substr(3, 2) : std::string_view());
  return static_cast<uint8_t>(std::strtol(digits.c_str(), nullptr, 16));
}

// Byte-level BPE token text back to bytes; code points that stand for no byte are spelled out
// the way llama.cpp does ("[UNK_BYTE_0x..." + text + "]").
std::string DecodeByteLevel(std::string_view text) {
  std::string out;
  for (size_t pos = 0; pos < text.size();) {
    const uint32_t cpt = DecodeLenient(text, pos);
    const int byte = UnicodeToByte(cpt);
    if (byte >= 0) {
      out.push_back(static_cast<char>(byte));
      continue;
    }
    std::string utf8;
    AppendUtf8(cpt, utf8);
    out += "[UNK_BYTE_0x";
    for (unsigned char c : utf8) out += fmt::format("{:02x}", c);
    out += text;
    out += "]";
  }
  return out;
}

std::string UnescapeSpm(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 3, "\xE2\x96\x81") == 0) {
      out.push_back(' ');
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::string PieceOf(const Vocab& v, TokenId id) {
  const uint32_t attr = v.attrs[id];
  const std::string_view text = v.texts[id];
  if (attr & (kAttrUnknown | kAttrControl | kAttrUserDefined)) return std::string(text);
  if (attr & kAttrNormal)
    return v.type == VocabType::kSpm ? UnescapeSpm(text) : DecodeByteLevel(text);
  if (attr & kAttrByte) return std::string(1, static_cast<char>(ByteTokenValue(text)));
  return "";  // unused / undefined tokens render as nothing
}

bool IsAnyOf(std::string_view text, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), text) != names.end();
}

// llama.cpp recognises some special tokens by their text when the metadata does not name them,
// and forces them to be control tokens.
void DetectSpecialTokens(Vocab& v, TokenId& fim_pad, TokenId& fim_rep, TokenId& fim_sep,
                         TokenId fim_pre, TokenId fim_suf, TokenId fim_mid) {
  struct Rule {
    TokenId* id;
    std::initializer_list<std::string_view> names;
  };
  const Rule rules[] = {
      {&v.eot,
       {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
        "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>"}},
      {&v.eom, {"<|eom_id|>"}},
      {&fim_pre,
       {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
        "<|code_prefix|>", "<|prefix|>"}},
      {&fim_suf,
       {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
        "<|code_suffix|>", "<|suffix|>"}},
      {&fim_mid,
       {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
        "<|code_middle|>", "<|middle|>"}},
      {&fim_pad, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}},
      {&fim_rep, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}},
      {&fim_sep, {"<|file_sep|>"}},
  };
  for (const Rule& rule : rules) {
    if (*rule.id != -1) continue;
    // llama.cpp scans a hash map, so with several candidates its pick is arbitrary; take the
    // lowest id.
    for (TokenId id = 0; id < v.size(); ++id) {
      if (IsAnyOf(v.texts[id], rule.names)) {
        *rule.id = id;
        v.attrs[id] |= kAttrControl;
        break;
      }
    }
  }
}

void BuildEog(Vocab& v, TokenId fim_pad, TokenId fim_rep, TokenId fim_sep) {
  std::vector<TokenId> eog;
  for (TokenId id : {fim_pad, fim_rep, fim_sep}) {
    if (id != -1) eog.push_back(id);
  }
  for (TokenId id = 0; id < v.size(); ++id) {
    if (IsAnyOf(v.texts[id], {"<|eot_id|>",
                              "<|im_end|>",
                              "<|end|>",
                              "<|return|>",
                              "<|call|>",
                              "<|flush|>",
                              "<|calls|>",
                              "<end_of_turn>",
                              "<|endoftext|>",
                              "</s>",
                              "<|eom_id|>",
                              "<EOT>",
                              "_<EOT>",
                              "[EOT]",
                              "[EOS]",
                              "<|end_of_text|>",
                              "<end_of_utterance>",
                              "<eos>",
                              "<turn|>",
                              "<|tool_response>",
                              "<｜end▁of▁sentence｜>",
                              "[e~["})) {
      eog.push_back(id);
      v.attrs[id] |= kAttrControl;
    }
    if (IsAnyOf(v.texts[id], {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"})) {
      v.attrs[id] = kAttrUserDefined;
    }
  }
  for (TokenId id : {v.eos, v.eot, v.eom}) {
    if (id != -1) eog.push_back(id);
  }
  std::sort(eog.begin(), eog.end());
  eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
  auto find_text = [&](std::string_view text) {
    return std::find_if(eog.begin(), eog.end(), [&](TokenId id) { return v.texts[id] == text; });
  };
  // gpt-oss / solar-open: "<|end|>" ends a message, not the generation.
  const bool has_return = find_text("<|return|>") != eog.end();
  const bool has_call = find_text("<|call|>") != eog.end() || find_text("<|calls|>") != eog.end();
  const bool has_flush = find_text("<|flush|>") != eog.end();
  if (auto end = find_text("<|end|>"); end != eog.end() && has_call && (has_return || has_flush)) {
    v.attrs[*end] = kAttrUserDefined;
    eog.erase(end);
  }
  // gemma4 / plamo: "</s>" is an ordinary token there.
  if (find_text("<|tool_response>") != eog.end() || find_text("<|plamo:eos|>") != eog.end()) {
    if (auto s = find_text("</s>"); s != eog.end()) {
      v.attrs[*s] = kAttrNormal;
      eog.erase(s);
    }
  }
  v.eog = std::move(eog);
}

void ApplyModelSpecificAttrs(Vocab& v, const gguf::Metadata& md) {
  std::string name = md.GetString("general.name").value_or("");
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto set = [&](std::string_view text, uint32_t attr, bool on) {
    const TokenId id = v.Find(text);
    if (id == -1) return;
    v.attrs[id] = on ? (v.attrs[id] | attr) : (v.attrs[id] & ~attr);
  };
  const bool jina = v.pre_name.find("jina-v2-de") != std::string::npos ||
                    v.pre_name.find("jina-v2-es") != std::string::npos ||
                    v.pre_name.find("jina-v2-code") != std::string::npos;
  if (jina) {
    set("<mask>", kAttrLStrip, true);
  } else if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (TokenId id : v.special_tokens) v.attrs[id] |= kAttrRStrip;
    set("</s>", kAttrRStrip, true);
    for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) set(t, kAttrRStrip, false);
  } else if (name.find("modern-bert") != std::string::npos) {
    set("[MASK]", kAttrLStrip, true);
  }
}

}  // namespace

void TextTable::Add(std::string_view text) {
  if (text.size() > UINT32_MAX - bytes_.size()) {
    Fail("tokenizer metadata: the token texts pass 4 GiB ({} texts so far)", size());
  }
  bytes_.append(text);
  offsets_.push_back(bytes_.size());
}

TokenId TextIndex::Build(const TextTable& texts) {
  size_t size = 16;
  while (size < 2 * texts.size()) size *= 2;
  slots_.assign(size, -1);
  mask_ = size - 1;
  const std::hash<std::string_view> hash;
  for (size_t id = 0; id < texts.size(); ++id) {
    for (size_t s = hash(texts[id]) & mask_;; s = (s + 1) & mask_) {
      const TokenId other = slots_[s];
      if (other < 0) {
        slots_[s] = static_cast<TokenId>(id);
        break;
      }
      if (texts[static_cast<size_t>(other)] == texts[id]) return static_cast<TokenId>(id);
    }
  }
  return -1;
}

TokenId TextIndex::Find(std::string_view text, const TextTable& texts) const {
  if (slots_.empty()) return -1;
  for (size_t s = std::hash<std::string_view>{}(text)&mask_;; s = (s + 1) & mask_) {
    const TokenId id = slots_[s];
    if (id < 0 || texts[static_cast<size_t>(id)] == text) return id;
  }
}

Vocab LoadVocab(const gguf::Metadata& md) {
  Vocab v;
  const auto model = md.GetString(kModelKey);
  if (!model) Fail("tokenizer metadata: missing key '{}'", kModelKey);
  v.model = *model;
  v.pre_name = md.GetString(kPreKey).value_or("");
  if (v.model == "llama") {
    v.type = VocabType::kSpm;
    v.bos = 1, v.eos = 2, v.unk = 0;
    v.add_space_prefix = true;
    v.add_bos = true;
  } else if (v.model == "gpt2") {
    v.type = VocabType::kBpe;
    v.bos = 11, v.eos = 11;
    v.pre = FindPreTokenizer(v.pre_name);
    if (!v.pre) {
      Fail("unknown pre-tokenizer '{}' (known: {})", v.pre_name, KnownPreTokenizerNames());
    }
    v.ignore_merges = v.pre->ignore_merges;
    v.add_bos = v.pre->add_bos;
    v.clean_spaces = v.pre->clean_spaces;
    if (v.pre->no_bos) v.bos = -1;
  } else {
    Fail("unsupported tokenizer model '{}' (supported: llama, gpt2)", v.model);
  }
  v.add_space_prefix = md.GetBool("tokenizer.ggml.add_space_prefix").value_or(v.add_space_prefix);
  v.remove_extra_whitespaces =
      md.GetBool("tokenizer.ggml.remove_extra_whitespaces").value_or(false);

  const gguf::Array& tokens = RequireArray(md, kTokensKey, {gguf::ValueType::kString}, 0);
  const size_t n = tokens.items.size();
  if (n == 0) Fail("tokenizer metadata: '{}' is empty", kTokensKey);
  if (n > static_cast<size_t>(INT32_MAX)) Fail("tokenizer metadata: too many tokens ({})", n);
  const gguf::Array* scores =
      md.Find(kScoresKey)
          ? &RequireArray(md, kScoresKey, {gguf::ValueType::kFloat32, gguf::ValueType::kInt32}, n)
          : nullptr;
  const gguf::Array* types =
      md.Find(kTypesKey) ? &RequireArray(md, kTypesKey, {gguf::ValueType::kInt32}, n) : nullptr;

  v.texts.Reserve(n);
  v.scores.assign(n, 0.0f);
  v.attrs.assign(n, kAttrNormal);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = tokens.items[i].AsString(kTokensKey);
    v.texts.Add(text.empty() ? fmt::format("[EMPTY_{}]", i) : text);
    if (scores) v.scores[i] = static_cast<float>(scores->items[i].AsFloat(kScoresKey));
    if (types) v.attrs[i] = AttrFromType(types->items[i].AsInt(kTypesKey));
  }
  if (const TokenId dup = v.ids.Build(v.texts); dup >= 0) {
    Fail("tokenizer metadata: token {} duplicates the text of token {} ('{}')", dup,
         v.ids.Find(v.texts[static_cast<size_t>(dup)], v.texts), v.texts[static_cast<size_t>(dup)]);
  }

  if (v.type == VocabType::kBpe) {
    const gguf::Array& merges = RequireArray(md, kMergesKey, {gguf::ValueType::kString}, 0);
    v.merges.reserve(merges.items.size());
    for (const gguf::Value& item : merges.items) {
      const std::string& merge = item.AsString(kMergesKey);
      const size_t space = merge.find(' ', 1);
      if (space == std::string::npos) {
        v.merges.emplace_back();  // llama.cpp keeps such an entry as an (empty, empty) pair
      } else {
        v.merges.emplace_back(merge.substr(0, space), merge.substr(space + 1));
      }
    }
  }

  // Special token ids: an out-of-range default is dropped, an out-of-range explicit id rejected.
  const int32_t n_vocab = v.size();
  for (TokenId* id : {&v.bos, &v.eos, &v.unk}) {
    if (*id >= n_vocab) *id = -1;
  }
  TokenId fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
  const std::pair<std::string_view, TokenId*> id_keys[] = {
      {"tokenizer.ggml.bos_token_id", &v.bos},       {"tokenizer.ggml.eos_token_id", &v.eos},
      {"tokenizer.ggml.eot_token_id", &v.eot},       {"tokenizer.ggml.eom_token_id", &v.eom},
      {"tokenizer.ggml.unknown_token_id", &v.unk},   {"tokenizer.ggml.seperator_token_id", &v.sep},
      {"tokenizer.ggml.padding_token_id", &v.pad},   {"tokenizer.ggml.mask_token_id", &v.mask},
      {"tokenizer.ggml.fim_pre_token_id", &fim_pre}, {"tokenizer.ggml.fim_suf_token_id", &fim_suf},
      {"tokenizer.ggml.fim_mid_token_id", &fim_mid}, {"tokenizer.ggml.fim_pad_token_id", &fim_pad},
      {"tokenizer.ggml.fim_rep_token_id", &fim_rep}, {"tokenizer.ggml.fim_sep_token_id", &fim_sep},
      {"tokenizer.ggml.prefix_token_id", &fim_pre},  {"tokenizer.ggml.suffix_token_id", &fim_suf},
      {"tokenizer.ggml.middle_token_id", &fim_mid},
  };
  for (const auto& [key, id] : id_keys) ReadId(md, key, n_vocab, *id);
  v.add_bos = md.GetBool("tokenizer.ggml.add_bos_token").value_or(v.add_bos);
  v.add_eos = md.GetBool("tokenizer.ggml.add_eos_token").value_or(v.add_eos);
  // llama.cpp would abort when asked to add a token the vocabulary lacks; we add nothing.
  if (v.bos == -1) v.add_bos = false;
  if (v.eos == -1) v.add_eos = false;

  DetectSpecialTokens(v, fim_pad, fim_rep, fim_sep, fim_pre, fim_suf, fim_mid);
  for (TokenId id = 0; id < n_vocab; ++id) {
    if ((v.attrs[id] & kAttrControl) && v.texts[id].find("unused") != std::string_view::npos) {
      v.attrs[id] |= kAttrUnused;
    }
  }
  BuildEog(v, fim_pad, fim_rep, fim_sep);

  for (TokenId id = 0; id < n_vocab; ++id) {
    if (v.attrs[id] & (kAttrControl | kAttrUserDefined | kAttrUnknown)) {
      v.special_tokens.push_back(id);
    }
  }
  std::stable_sort(v.special_tokens.begin(), v.special_tokens.end(),
                   [&](TokenId a, TokenId b) { return v.texts[a].size() > v.texts[b].size(); });

  v.pieces.Reserve(n);
  for (TokenId id = 0; id < n_vocab; ++id) v.pieces.Add(PieceOf(v, id));

  ApplyModelSpecificAttrs(v, md);
  return v;
}

}  // namespace dizuo::tok
