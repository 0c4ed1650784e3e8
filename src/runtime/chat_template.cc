#include "runtime/chat_template.h"

#include "core/error.h"

namespace dizuo {
namespace {

bool Contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// Jinja's `trim` / Python's strip(): leading and trailing whitespace.
std::string Trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  const size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return "";
  return std::string(s.substr(begin, s.find_last_not_of(kSpace) - begin + 1));
}

constexpr std::string_view kQwen25System =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

void CheckRoles(std::span<const ChatMessage> messages) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant") {
      Fail("chat message {} has role '{}'; expected system, user or assistant", i, role);
    }
  }
}

// <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] ...
// (Meta's Llama 2 chat format: contents stripped, the system message folded into the first user
// turn, every turn but the first preceded by BOS in the text).
std::string RenderLlama2(std::span<const ChatMessage> messages) {
  std::string out, system;
  bool first_turn = true;
  for (const ChatMessage& m : messages) {
    if (m.role == "system") {
      system = Trim(m.content);
    } else if (m.role == "user") {
      out += first_turn ? "[INST] " : "<s>[INST] ";
      if (!system.empty()) {
        out += "<<SYS>>\n" + system + "\n<</SYS>>\n\n";
        system.clear();
      }
      out += Trim(m.content) + " [/INST]";
      first_turn = false;
    } else {
      // Appended piecewise: GCC 12 warns falsely (-Wrestrict) on " " + std::string&&.
      out += ' ';
      out += Trim(m.content);
      out += " </s>";
    }
  }
  return out;
}

}  // namespace

std::optional<ChatTemplate> ChatTemplate::Recognize(std::string_view jinja) {
  if (Contains(jinja, "<|start_header_id|>")) {
    ChatTemplate t(Style::kLlama3, "llama3");
    if (Contains(jinja, "Cutting Knowledge Date")) {
      t.name_ = "llama3.1";
      t.llama31_header_ = true;
    }
    return t;
  }
  if (Contains(jinja, "<|im_start|>")) {
    ChatTemplate t(Style::kChatML, "chatml");
    if (Contains(jinja, kQwen25System)) {
      t.name_ = "qwen2.5";
      t.default_system_ = kQwen25System;
    }
    return t;
  }
  if (Contains(jinja, "<start_of_turn>")) return ChatTemplate(Style::kGemma, "gemma");
  if (Contains(jinja, "<|assistant|>") && Contains(jinja, "<|end|>")) {
    return ChatTemplate(Style::kPhi3, "phi3");
  }
  if (Contains(jinja, "<|user|>") && Contains(jinja, "<|assistant|>")) {
    return ChatTemplate(Style::kZephyr, "zephyr");
  }
  // Llama 2 itself; Mistral's [INST] formats differ in spacing and system handling.
  if (Contains(jinja, "[INST]") && Contains(jinja, "<<SYS>>")) {
    return ChatTemplate(Style::kLlama2, "llama2");
  }
  return std::nullopt;
}

ChatTemplate ChatTemplate::ForArchitecture(std::string_view arch, bool vocab_has_llama3_headers) {
  if (arch.starts_with("gemma")) return FromName("gemma");
  if (arch.starts_with("qwen")) return FromName("chatml");
  if (arch == "llama") return FromName(vocab_has_llama3_headers ? "llama3" : "llama2");
  return FromName("chatml");
}

ChatTemplate ChatTemplate::FromName(std::string_view name) {
  if (name == "llama2") return ChatTemplate(Style::kLlama2, "llama2");
  if (name == "llama3") return ChatTemplate(Style::kLlama3, "llama3");
  if (name == "llama3.1") return *Recognize("<|start_header_id|> Cutting Knowledge Date");
  if (name == "chatml") return ChatTemplate(Style::kChatML, "chatml");
  if (name == "qwen2.5")
    return *Recognize(std::string("<|im_start|>") + std::string(kQwen25System));
  if (name == "gemma") return ChatTemplate(Style::kGemma, "gemma");
  if (name == "zephyr") return ChatTemplate(Style::kZephyr, "zephyr");
  if (name == "phi3") return ChatTemplate(Style::kPhi3, "phi3");
  Fail(
      "unknown chat template '{}'; built-in templates: llama2, llama3, llama3.1, chatml, qwen2.5, "
      "gemma, zephyr, phi3",
      name);
}

std::string ChatTemplate::Render(std::span<const ChatMessage> messages,
                                 bool add_generation_prompt) const {
  CheckRoles(messages);
  std::string out;
  switch (style_) {
    case Style::kLlama2:
      // The next turn starts with the assistant's text right after " [/INST]".
      return RenderLlama2(messages);

    case Style::kLlama3: {
      const auto turn = [&](std::string_view role, std::string_view content) {
        out += "<|start_header_id|>";
        out += role;
        out += "<|end_header_id|>\n\n";
        out += content;
        out += "<|eot_id|>";
      };
      size_t first = 0;
      if (llama31_header_) {
        std::string system;
        if (!messages.empty() && messages[0].role == "system") {
          system = Trim(messages[0].content);
          first = 1;
        }
        turn("system",
             "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" + system);
      }
      for (size_t i = first; i < messages.size(); ++i) {
        turn(messages[i].role, Trim(messages[i].content));
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    }

    case Style::kChatML: {
      if (!default_system_.empty() && (messages.empty() || messages[0].role != "system")) {
        out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
      }
      for (const ChatMessage& m : messages) {
        out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      }
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;
    }

    case Style::kGemma: {
      // Gemma has no system role: the system text opens the first user turn (as Gemma 3's own
      // template does), followed by a blank line.
      std::string system_prefix;
      for (const ChatMessage& m : messages) {
        if (m.role == "system") {
          system_prefix = m.content + "\n\n";
          continue;
        }
        const bool user = m.role == "user";
        out += user ? "<start_of_turn>user\n" : "<start_of_turn>model\n";
        if (user) {
          out += system_prefix;
          system_prefix.clear();
        }
        out += Trim(m.content) + "<end_of_turn>\n";
      }
      if (add_generation_prompt) out += "<start_of_turn>model\n";
      return out;
    }

    case Style::kZephyr: {
      for (const ChatMessage& m : messages) {
        out += "<|" + m.role + "|>\n" + m.content + "</s>\n";
      }
      if (add_generation_prompt) out += "<|assistant|>\n";
      return out;
    }

    case Style::kPhi3: {
      for (const ChatMessage& m : messages) {
        if (m.role == "system" && m.content.empty()) continue;
        out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
      }
      if (add_generation_prompt) out += "<|assistant|>\n";
      return out;
    }
  }
  DZ_ASSERT(false);
  return out;
}

}  // namespace dizuo
