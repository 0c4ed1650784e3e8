// Built-in chat templates: the prompt formats of the supported architectures' instruction-tuned
// models, rendered in C++ (no Jinja engine). The template is recognized from the model's
// `tokenizer.chat_template` text by its marker strings, or chosen from the architecture.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dizuo {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  enum class Style { kLlama2, kLlama3, kChatML, kGemma, kZephyr, kPhi3 };

  // The template that `jinja` (a tokenizer.chat_template) is a variant of, or nullopt when it is
  // none of the built-in ones.
  static std::optional<ChatTemplate> Recognize(std::string_view jinja);
  // The usual template of an architecture: gemma* -> gemma, qwen* -> chatml, llama -> llama3 when
  // the vocabulary has <|start_header_id|>, else llama2; anything else -> chatml.
  static ChatTemplate ForArchitecture(std::string_view arch, bool vocab_has_llama3_headers);
  // By name ("llama2", "llama3", "llama3.1", "chatml", "qwen2.5", "gemma", "zephyr", "phi3"), for
  // a command-line override. Throws dizuo::Error listing the names when `name` is unknown.
  static ChatTemplate FromName(std::string_view name);

  // Renders a conversation as the model expects it. The text omits the BOS token that starts a
  // conversation (tokenizing with add_special adds it) but contains every other special token
  // as text, so tokenize it with parse_special. With `add_generation_prompt`, ends with the header
  // of the assistant's next turn. Throws dizuo::Error on a role other than system/user/assistant.
  std::string Render(std::span<const ChatMessage> messages, bool add_generation_prompt) const;

  Style style() const { return style_; }
  const std::string& name() const { return name_; }

 private:
  ChatTemplate(Style style, std::string name) : style_(style), name_(std::move(name)) {}

  Style style_;
  std::string name_;
  // Used when the conversation has no system message (Qwen 2.5 always has one).
  std::string default_system_;
  // Llama 3.1+: always a system turn, starting with the knowledge-cutoff header.
  bool llama31_header_ = false;
};

}  // namespace dizuo
