#include "runtime/chat_template.h"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "test_paths.h"

namespace dizuo {
namespace {

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Golden renderings of real templates by jinja2 (src/runtime/testdata/make_chat_golden.py).
TEST(ChatTemplateTest, MatchesJinjaRenderingsOfRealTemplates) {
  const auto golden = nlohmann::json::parse(
      ReadFile(testing::SourceDir() / "src/runtime/testdata/chat_golden.json"));
  ASSERT_GE(golden.size(), 20u);
  for (const auto& c : golden) {
    const std::string file = c["template"];
    SCOPED_TRACE(file + " / " + c["conversation"].get<std::string>());
    const std::string jinja = ReadFile(testing::SharedDir() / "testdata/chat-templates" / file);
    const auto recognized = ChatTemplate::Recognize(jinja);
    ASSERT_TRUE(recognized.has_value());
    EXPECT_EQ(recognized->name(), c["recognized_as"].get<std::string>());
    std::vector<ChatMessage> messages;
    for (const auto& m : c["messages"]) messages.push_back({m["role"], m["content"]});
    EXPECT_EQ(recognized->Render(messages, c["add_generation_prompt"]),
              c["expected"].get<std::string>());
  }
}

TEST(ChatTemplateTest, UnknownTemplatesAreNotRecognized) {
  for (const char* file : {"mistralai-Mistral-Nemo-Instruct-2407.jinja",
                           "deepseek-ai-DeepSeek-V3.1.jinja", "llama-cpp-rwkv-world.jinja"}) {
    const std::string jinja = ReadFile(testing::SharedDir() / "testdata/chat-templates" / file);
    EXPECT_FALSE(ChatTemplate::Recognize(jinja).has_value()) << file;
  }
  EXPECT_FALSE(ChatTemplate::Recognize("").has_value());
}

TEST(ChatTemplateTest, ArchitectureFallback) {
  EXPECT_EQ(ChatTemplate::ForArchitecture("gemma3", false).name(), "gemma");
  EXPECT_EQ(ChatTemplate::ForArchitecture("qwen2", false).name(), "chatml");
  EXPECT_EQ(ChatTemplate::ForArchitecture("llama", true).name(), "llama3");
  EXPECT_EQ(ChatTemplate::ForArchitecture("llama", false).name(), "llama2");
  EXPECT_EQ(ChatTemplate::ForArchitecture("mamba", false).name(), "chatml");
}

TEST(ChatTemplateTest, FromNameKnowsEveryBuiltInAndRejectsOthers) {
  for (const char* name :
       {"llama2", "llama3", "llama3.1", "chatml", "qwen2.5", "gemma", "zephyr", "phi3"}) {
    EXPECT_EQ(ChatTemplate::FromName(name).name(), name);
  }
  EXPECT_THROW(ChatTemplate::FromName("vicuna"), Error);
}

const std::vector<ChatMessage> kConversation = {
    {"system", "Be brief."},
    {"user", " Hi "},
    {"assistant", "Hello."},
    {"user", "Bye"},
};

// Meta's Llama 2 chat format, BOS before every turn but the first (which the tokenizer adds).
TEST(ChatTemplateTest, Llama2) {
  EXPECT_EQ(ChatTemplate::FromName("llama2").Render(kConversation, true),
            "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Bye [/INST]");
}

// Gemma has no system role: the system text opens the first user turn (Gemma 3's template).
TEST(ChatTemplateTest, GemmaFoldsSystemIntoFirstUserTurn) {
  EXPECT_EQ(ChatTemplate::FromName("gemma").Render(kConversation, true),
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
            "<start_of_turn>model\nHello.<end_of_turn>\n"
            "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplateTest, ZephyrAndPlainLlama3) {
  EXPECT_EQ(ChatTemplate::FromName("zephyr").Render(kConversation, true),
            "<|system|>\nBe brief.</s>\n<|user|>\n Hi </s>\n<|assistant|>\nHello.</s>\n"
            "<|user|>\nBye</s>\n<|assistant|>\n");
  EXPECT_EQ(ChatTemplate::FromName("llama3").Render(kConversation, false),
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>");
}

// A conversation's rendering is a prefix of the rendering with one more turn, so a chat can keep
// the cached tokens of earlier turns.
TEST(ChatTemplateTest, LongerConversationExtendsShorterOne) {
  for (const char* name :
       {"llama2", "llama3", "llama3.1", "chatml", "qwen2.5", "gemma", "zephyr"}) {
    const ChatTemplate t = ChatTemplate::FromName(name);
    const std::vector<ChatMessage> shorter(kConversation.begin(), kConversation.begin() + 3);
    const std::string full = t.Render(kConversation, true);
    EXPECT_EQ(full.rfind(t.Render(shorter, false), 0), 0u) << name;
  }
}

TEST(ChatTemplateTest, RejectsUnknownRoles) {
  const std::vector<ChatMessage> bad = {{"tool", "x"}};
  EXPECT_THROW(ChatTemplate::FromName("chatml").Render(bad, true), Error);
}

}  // namespace
}  // namespace dizuo
