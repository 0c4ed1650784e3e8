#include "bench/model_stats.h"

#include <algorithm>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "core/dtype.h"
#include "gguf/gguf.h"

namespace dizuo::bench {
namespace {

// llama.cpp's llama_ftype names, as llama-bench prints them.
std::string FileTypeName(int64_t id) {
  static const std::pair<int64_t, const char*> kNames[] = {
      {0, "all F32"},        {1, "F16"},
      {2, "Q4_0"},           {3, "Q4_1"},
      {7, "Q8_0"},           {8, "Q5_0"},
      {9, "Q5_1"},           {10, "Q2_K - Medium"},
      {11, "Q3_K - Small"},  {12, "Q3_K - Medium"},
      {13, "Q3_K - Large"},  {14, "Q4_K - Small"},
      {15, "Q4_K - Medium"}, {16, "Q5_K - Small"},
      {17, "Q5_K - Medium"}, {18, "Q6_K"},
      {32, "BF16"}};
  for (const auto& [value, name] : kNames) {
    if (value == id) return name;
  }
  return "";
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::string HumanCount(int64_t n) {
  if (n >= 1'000'000'000) return fmt::format("{:.2f} B", n / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.2f} M", n / 1e6);
  if (n >= 1'000) return fmt::format("{:.2f} K", n / 1e3);
  return fmt::format("{}", n);
}

std::string HumanBytes(uint64_t n) {
  if (n >= (uint64_t{1} << 30)) return fmt::format("{:.2f} GiB", n / double(uint64_t{1} << 30));
  if (n >= (uint64_t{1} << 20)) return fmt::format("{:.2f} MiB", n / double(uint64_t{1} << 20));
  if (n >= (uint64_t{1} << 10)) return fmt::format("{:.2f} KiB", n / double(uint64_t{1} << 10));
  return fmt::format("{} B", n);
}

std::string ModelStats::Label() const {
  std::string size;
  if (n_params >= 1'000'000'000) {
    size = fmt::format("{:.1f}B", n_params / 1e9);
  } else if (n_params >= 1'000'000) {
    size = fmt::format("{:.0f}M", n_params / 1e6);
  } else {
    size = fmt::format("{:.0f}K", n_params / 1e3);
  }
  return fmt::format("{} {} {}", arch, size, file_type);
}

std::string ModelStats::TypeMix() const {
  std::vector<std::pair<std::string, uint64_t>> sorted(type_bytes.begin(), type_bytes.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string out;
  for (const auto& [name, bytes] : sorted) {
    const double share = weight_bytes ? 100.0 * static_cast<double>(bytes) / weight_bytes : 0;
    out += fmt::format("{}{} {:.{}f}%", out.empty() ? "" : ", ", name, share, share < 1 ? 1 : 0);
  }
  return out;
}

ModelStats InspectModel(const std::string& path) {
  const gguf::File file = gguf::File::Open(path);
  ModelStats s;
  s.path = path;
  s.file_bytes = file.file_size();
  s.arch = file.metadata().GetString("general.architecture").value_or("?");
  bool tied_output = file.FindTensor("output.weight") == nullptr;
  for (const gguf::TensorInfo& t : file.tensors()) {
    s.n_params += t.elements();
    s.weight_bytes += t.nbytes;
    s.type_bytes[std::string(Name(t.type))] += t.nbytes;
    if (t.name == "token_embd.weight" && !tied_output) {
      const int64_t rows = t.shape.size() >= 2 ? t.shape[1] : 1;
      s.weight_bytes_per_token += rows > 0 ? t.nbytes / static_cast<uint64_t>(rows) : t.nbytes;
    } else {
      s.weight_bytes_per_token += t.nbytes;
    }
    // blk.N.attn_k.weight is [n_embd, n_head_kv * head_dim]: one cache cell of K per layer holds
    // ne[1] elements (likewise V).
    if (t.name.rfind("blk.", 0) == 0 &&
        (EndsWith(t.name, ".attn_k.weight") || EndsWith(t.name, ".attn_v.weight")) &&
        t.shape.size() >= 2) {
      s.kv_bytes_per_cell += static_cast<uint64_t>(t.shape[1]) * 2;
    }
  }
  if (const auto id = file.metadata().GetInt("general.file_type")) s.file_type = FileTypeName(*id);
  if (s.file_type.empty()) {
    uint64_t most = 0;
    for (const auto& [name, bytes] : s.type_bytes) {
      if (bytes > most) most = bytes, s.file_type = name;
    }
  }
  return s;
}

}  // namespace dizuo::bench
