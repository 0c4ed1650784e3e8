// The skeleton backend, in-tree and as a plug-in: it supports nothing, so stories260K runs
// entirely on the CPU fallback, reproduces llama.cpp's goldens, and the profile shows 100%
// fallback. The plug-in loader's errors (missing file, not a plug-in, version mismatch).
#include "backends/skeleton/skeleton_backend.h"

#include <gtest/gtest.h>

#include "backends/backend.h"
#include "backends/plugin.h"
#include "core/error.h"
#include "runtime/stories_test_util.h"

namespace dizuo {
namespace {

void ExpectAllFellBack(const SchedulerProfile& p, const std::string& name) {
  EXPECT_EQ(p.selected, name);
  EXPECT_EQ(p.fallback, "cpu");
  EXPECT_GT(p.nodes, 0);
  EXPECT_EQ(p.fallback_nodes, p.nodes);
  for (const auto& [key, t] : p.ops) EXPECT_EQ(key.second, "cpu") << OpName(key.first);
  int64_t runs = 0;
  for (const FallbackGroup& g : p.fallbacks) {
    runs += g.count;
    EXPECT_EQ(g.reason, fmt::format("unimplemented: {} (skeleton)", OpName(g.op)));
  }
  EXPECT_EQ(runs, p.nodes);
  EXPECT_NE(p.Report().find(fmt::format("fallback: {} of {} nodes (100.0%)", p.nodes, p.nodes)),
            std::string::npos)
      << p.Report();
}

void ExpectGoldens(const std::string& backend) {
  auto engine = testing::LoadStoriesOn(backend, /*profile=*/true);
  const auto cases = testing::ReadStoriesGoldens();
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    EXPECT_EQ(testing::GreedyText(*engine, c.prompt, c.n_predict), c.continuation)
        << "prompt: " << c.prompt;
  }
  ExpectAllFellBack(engine->profile(), backend);
  EXPECT_NEAR(engine->profile().fallback_seconds(), engine->profile().seconds(),
              engine->profile().copies.seconds + 1e-9);
}

TEST(SkeletonTest, SupportsNoOpAndSaysSo) {
  auto backend = CreateBackend("skeleton", {});
  EXPECT_FALSE(backend->device().host_memory);
  Graph g;
  Tensor* a = g.NewInput(DType::F32, {4, 2}, "a");
  g.Add(a, a);
  EXPECT_FALSE(backend->Supports(g.nodes()[0]));
  EXPECT_EQ(backend->WhyUnsupported(g.nodes()[0]), "unimplemented: ADD (skeleton)");
  // Compute on a node it declined is a clear error, not a crash.
  try {
    backend->Compute(g.nodes());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unimplemented: ADD"), std::string::npos) << e.what();
  }
}

TEST(SkeletonTest, RunsStoriesToTheGoldensThroughFallback) { ExpectGoldens("skeleton"); }

TEST(SkeletonPluginTest, LoadsAndRunsStoriesToTheGoldens) {
  const std::string name = LoadBackendPlugin(DIZUO_SKELETON_PLUGIN);
  EXPECT_EQ(name, "skeleton_plugin");
  EXPECT_EQ(LoadBackendPlugin(DIZUO_SKELETON_PLUGIN), name);  // loading again is harmless
  const auto names = BackendNames();
  EXPECT_NE(std::find(names.begin(), names.end(), name), names.end());
  ExpectGoldens(name);
}

std::string LoadError(const std::string& path) {
  try {
    LoadBackendPlugin(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(SkeletonPluginTest, ClearErrors) {
  EXPECT_NE(LoadError("/nonexistent/libnothing.so").find("no such backend plug-in file"),
            std::string::npos);
  // A file that is not a shared library.
  const std::string not_elf = (testing::SharedDir() / "golden/stories260K-greedy.jsonl").string();
  EXPECT_NE(LoadError(not_elf).find("cannot load the backend plug-in"), std::string::npos)
      << LoadError(not_elf);
  // A shared library without the entry points.
  const std::string error = LoadError(DIZUO_FMT_LIBRARY);
  EXPECT_NE(error.find("entry point dizuo_backend_api_version is missing"), std::string::npos)
      << error;
  const std::string mismatch = LoadError(DIZUO_MISMATCHED_PLUGIN);
  EXPECT_NE(mismatch.find(fmt::format("built for version {}, this dizuo implements version {}",
                                      kBackendApiVersion + 98, kBackendApiVersion)),
            std::string::npos)
      << mismatch;
}

}  // namespace
}  // namespace dizuo
