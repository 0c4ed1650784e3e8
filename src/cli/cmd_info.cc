#include <fmt/core.h>

#include "cli/commands.h"
#include "gguf/gguf.h"

namespace dizuo::cli {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += fmt::format("{}{}", i ? ", " : "", shape[i]);
  return s + "]";
}

std::string HumanBytes(uint64_t n) {
  if (n >= (1ull << 30)) return fmt::format("{:.2f} GiB", n / double(1ull << 30));
  if (n >= (1ull << 20)) return fmt::format("{:.2f} MiB", n / double(1ull << 20));
  if (n >= (1ull << 10)) return fmt::format("{:.2f} KiB", n / double(1ull << 10));
  return fmt::format("{} B", n);
}

}  // namespace

Command AddInfo(CLI::App& app) {
  struct Options {
    std::string model;
    size_t max_items = 8;
    bool no_tensors = false;
  };
  auto opt = std::make_shared<Options>();
  app.add_option("model", opt->model, "GGUF file")->required();
  app.add_option("--max-array", opt->max_items, "Array items to show before abbreviating")
      ->capture_default_str();
  app.add_flag("--no-tensors", opt->no_tensors, "Omit the tensor table");
  return [opt] {
    const gguf::File file = gguf::File::Open(opt->model);
    fmt::print("file: {}\nGGUF version: {}\nsize: {} ({} bytes)\nalignment: {}\n", file.path(),
               file.version(), HumanBytes(file.file_size()), file.file_size(), file.alignment());
    fmt::print("\nmetadata ({} keys):\n", file.metadata().size());
    for (const auto& [key, value] : file.metadata().entries()) {
      std::string type(gguf::ValueTypeName(value.type()));
      if (value.is_array()) {
        const gguf::Array& array = value.AsArray();
        type = fmt::format("{}[{}]", gguf::ValueTypeName(array.type), array.items.size());
      }
      fmt::print("  {:<42} {:<14} {}\n", key, type, value.ToString(opt->max_items));
    }
    if (opt->no_tensors) return 0;
    uint64_t total_bytes = 0;
    int64_t total_elements = 0;
    fmt::print("\ntensors ({}):\n  {:<40} {:<6} {:<24} {:>12}\n", file.tensors().size(), "name",
               "type", "shape", "bytes");
    for (const gguf::TensorInfo& t : file.tensors()) {
      fmt::print("  {:<40} {:<6} {:<24} {:>12}\n", t.name, Name(t.type), ShapeString(t.shape),
                 t.nbytes);
      total_bytes += t.nbytes;
      total_elements += t.elements();
    }
    fmt::print("  total: {} parameters, {}\n", total_elements, HumanBytes(total_bytes));
    return 0;
  };
}

}  // namespace dizuo::cli
