// The op cases `dizuo check` grades: every op over the shapes and dtypes real models use.
//
// Cases come from model shapes: built-in profiles (stories260K, Gemma 3 270M Q4_K_M, the
// synthetic llama/qwen2 1b presets, see docs/CHECK.md) and, for each model file given, the nodes
// of its own forward graphs (a decode step and a prompt batch), so a customer's model contributes
// exactly the op × shape × dtype combinations it runs. Identical cases from several sources are
// merged and list every source.
#pragma once

#include <string>
#include <vector>

#include "backends/testing/op_harness.h"
#include "core/dtype.h"

namespace dizuo::check {

struct CheckCase {
  harness::OpSpec spec;
  DType dtype = DType::F32;          // the weight / table / cache type the case is about
  std::string shape;                 // "[2048, 8192] x [2048, 12]": the operands' shapes
  std::vector<std::string> sources;  // profiles and model files that need it
  std::string note;                  // e.g. "2048 of 262144 vocab rows"
};

// How many cases to build: kQuick keeps one prompt batch size, fewer weight types and smaller
// output-matrix subsets, for the test suite; kFull is what `dizuo check` runs by default.
enum class CaseSet { kQuick, kFull };

// The built-in profiles' cases.
std::vector<CheckCase> BuiltinCases(CaseSet set);

// The cases of the forward graphs of the GGUF model at `path` (named `label` in sources).
// Throws dizuo::Error when the file cannot be loaded as a model.
std::vector<CheckCase> ModelFileCases(const std::string& path, const std::string& label,
                                      CaseSet set);

// Appends `more` to `cases`, merging cases with identical specs (their sources are joined).
void MergeCases(std::vector<CheckCase>& cases, std::vector<CheckCase> more);

// Keeps the cases whose op name contains `filter` (case-insensitive); all when empty.
std::vector<CheckCase> FilterCases(std::vector<CheckCase> cases, const std::string& filter);

}  // namespace dizuo::check
