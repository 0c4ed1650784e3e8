// libFuzzer target for the GGUF reader. Built only with -DDIZUO_FUZZ=ON and clang; run it with
// scripts/fuzz-gguf.sh.
//
// Properties checked on every input:
//  - File::Parse either succeeds or throws dizuo::Error (anything else, or a sanitizer report,
//    is a bug);
//  - every value and every byte of every tensor view of an accepted file can be read;
//  - an accepted file is accepted by the Writer, and writing what was read, reading it back and
//    writing again gives the same bytes.
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <vector>

#include "core/error.h"
#include "gguf/gguf.h"

namespace {

using dizuo::gguf::File;
using dizuo::gguf::Value;

volatile uint64_t g_sink;

uint64_t Touch(const Value& value) {
  uint64_t h = static_cast<uint64_t>(value.type());
  if (value.is_array()) {
    for (const Value& item : value.AsArray().items) h = h * 31 + Touch(item);
  } else if (value.type() == dizuo::gguf::ValueType::kString) {
    for (char c : value.AsString()) h = h * 31 + static_cast<unsigned char>(c);
  } else if (value.type() == dizuo::gguf::ValueType::kBool) {
    h += value.AsBool() ? 1 : 0;
  } else {
    h += std::hash<double>{}(value.AsFloat());
  }
  h += value.ToString(4).size();
  return h;
}

std::vector<uint8_t> Rewrite(const File& file) {
  dizuo::gguf::Writer writer(file.version());
  for (const auto& [key, value] : file.metadata().entries()) writer.metadata().Add(key, value);
  for (const auto& t : file.tensors()) writer.AddTensor(t.name, t.type, t.shape, t.bytes());
  return writer.Serialize();
}

[[noreturn]] void Bug(const char* what) {
  std::fprintf(stderr, "gguf_fuzz: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<File> file;
  try {
    file.emplace(File::Parse({data, size}, "fuzz.gguf"));
  } catch (const dizuo::Error&) {
    return 0;
  }
  uint64_t h = 0;
  for (const auto& [key, value] : file->metadata().entries()) h += key.size() + Touch(value);
  for (const auto& t : file->tensors()) {
    if (t.data < data || t.data + t.nbytes > data + size) Bug("tensor view outside the input");
    for (uint8_t b : t.bytes()) h += b;
    h += static_cast<uint64_t>(t.elements());
  }
  g_sink = h;

  std::vector<uint8_t> first;
  std::vector<uint8_t> second;
  try {
    first = Rewrite(*file);
    const File reread = File::Parse(first, "rewritten.gguf");
    second = Rewrite(reread);
  } catch (const dizuo::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    Bug("a file the reader accepted does not survive writing and reading back");
  }
  if (first != second) Bug("writing, reading and writing again changed the bytes");
  return 0;
}
