// What a benchmark reports about a GGUF file besides speed: size, parameter count, type mix, and
// the bytes a generated token must read (the input to the memory-bandwidth limit).
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace dizuo::bench {

struct ModelStats {
  std::string path;
  std::string arch;
  std::string file_type;  // llama.cpp's name of general.file_type ("Q4_K - Medium"), or the
                          // weight type with the most bytes
  uint64_t file_bytes = 0;
  int64_t n_params = 0;
  uint64_t weight_bytes = 0;
  std::map<std::string, uint64_t> type_bytes;  // weight bytes per dtype name
  // Weight bytes one generated token reads: every weight except the embedding table, of which it
  // reads one row; a table tied to the output projection is read in full.
  uint64_t weight_bytes_per_token = 0;
  // K and V bytes of one cache cell over all layers, for an F16 cache (2 bytes per element).
  uint64_t kv_bytes_per_cell = 0;

  // "llama 1.1B Q4_0": arch, parameter count, file type (as llama-bench names models).
  std::string Label() const;
  // "q4_K 71%, q6_K 24%, f32 5%": dtypes by share of weight bytes, largest first.
  std::string TypeMix() const;
};

// Reads the GGUF header and tensor table. Throws dizuo::Error for an unreadable or invalid file.
ModelStats InspectModel(const std::string& path);

// "1.10 B" / "134.11 M" (llama-bench's params column) and "606.12 MiB" / "2.05 GiB" (size column).
std::string HumanCount(int64_t n);
std::string HumanBytes(uint64_t n);

}  // namespace dizuo::bench
