#include "model/chat_template.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "formats/gguf.h"

namespace edgevlm {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Jinja's `| trim`, which the official Llama-3 template applies to every message.
std::string_view trim(std::string_view s) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

const char* chat_template_name(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::None: return "none";
    case ChatTemplate::ChatML: return "chatml";
    case ChatTemplate::Llama3: return "llama3";
    case ChatTemplate::Gemma: return "gemma";
    case ChatTemplate::Phi3: return "phi3";
    case ChatTemplate::Lfm2: return "lfm2";
    case ChatTemplate::SmolVLM: return "smolvlm";
  }
  return "?";
}

ChatTemplate parse_chat_template_name(std::string_view name) {
  const std::string n = lower(name);
  if (n == "none" || n == "raw") return ChatTemplate::None;
  if (n == "chatml") return ChatTemplate::ChatML;
  if (n == "llama3" || n == "llama-3") return ChatTemplate::Llama3;
  if (n == "gemma" || n == "gemma3") return ChatTemplate::Gemma;
  if (n == "phi3" || n == "phi-3") return ChatTemplate::Phi3;
  if (n == "lfm2") return ChatTemplate::Lfm2;
  if (n == "smolvlm") return ChatTemplate::SmolVLM;
  fail("unknown chat template '%s' (expected chatml, llama3, gemma, phi3, lfm2, smolvlm, none or auto)",
       std::string(name).c_str());
}

std::optional<ChatTemplate> detect_chat_template(std::string_view jinja) {
  auto has = [&](std::string_view marker) { return jinja.find(marker) != std::string_view::npos; };
  // Llama-3 first: its markers never occur in the others, while a template that merely mentions
  // <|im_start|> in passing is rarer still. LFM2 and SmolVLM also use <|im_start|>, so their own
  // markers are looked for before ChatML's (as llama.cpp does).
  if (has("<|start_header_id|>") && has("<|end_header_id|>")) return ChatTemplate::Llama3;
  if (has("<|tool_list_start|>") && has("<|tool_list_end|>")) return ChatTemplate::Lfm2;
  if (has("<|im_start|>")) return has("<end_of_utterance>") ? ChatTemplate::SmolVLM : ChatTemplate::ChatML;
  if (has("<|assistant|>") && has("<|end|>")) return ChatTemplate::Phi3;
  if (has("<start_of_turn>")) return ChatTemplate::Gemma;
  return std::nullopt;
}

std::string unknown_chat_template_warning(const std::string& model_path) {
  return "warning: " + model_path + ": tokenizer.chat_template is not a form edgevlm knows (chatml, llama3, " +
         "gemma, phi3, lfm2, smolvlm); using '" + chat_template_name(kFallbackChatTemplate) +
         "' (the prompt as is); choose one with --chat-template";
}

ChatTemplate chat_template_from_gguf(const GGUFFile& f, bool* unknown) {
  if (unknown) *unknown = false;
  const std::string jinja = f.get_string_or("tokenizer.chat_template", "");
  if (jinja.empty()) return ChatTemplate::None;
  if (auto t = detect_chat_template(jinja)) return *t;
  if (unknown) *unknown = true;
  return kFallbackChatTemplate;
}

ChatTemplate chat_template_for(std::string_view name, const GGUFFile& f, bool* unknown) {
  if (unknown) *unknown = false;
  if (lower(name) == "auto") return chat_template_from_gguf(f, unknown);
  return parse_chat_template_name(name);
}

std::string apply_chat_template(ChatTemplate t, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt) {
  std::string out;
  switch (t) {
    case ChatTemplate::None:
      for (size_t i = 0; i < messages.size(); ++i) {
        if (i) out += "\n";
        out += messages[i].content;
      }
      break;
    case ChatTemplate::ChatML:
      for (const ChatMessage& m : messages)
        out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      break;
    case ChatTemplate::Llama3:
      out += "<|begin_of_text|>";
      for (const ChatMessage& m : messages) {
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n";
        out += trim(m.content);
        out += "<|eot_id|>";
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
    case ChatTemplate::Gemma: {
      out += "<bos>";
      std::string system;  // Gemma has no system turn: it opens the next user turn
      for (const ChatMessage& m : messages) {
        if (m.role == "system") {
          system += trim(m.content);
          continue;
        }
        const std::string role = m.role == "assistant" ? "model" : m.role;
        out += "<start_of_turn>" + role + "\n";
        if (!system.empty() && role != "model") {
          out += system + "\n\n";
          system.clear();
        }
        out += trim(m.content);
        out += "<end_of_turn>\n";
      }
      if (add_generation_prompt) out += "<start_of_turn>model\n";
      break;
    }
    case ChatTemplate::Phi3:
      for (const ChatMessage& m : messages) out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
      if (add_generation_prompt) out += "<|assistant|>\n";
      break;
    case ChatTemplate::Lfm2:
      out += "<|startoftext|>";
      for (const ChatMessage& m : messages)
        out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      break;
    case ChatTemplate::SmolVLM:
      out += "<|im_start|>";  // SmolVLM's BOS; the turns themselves are not ChatML
      for (const ChatMessage& m : messages) {
        if (m.role == "system")
          out += m.content + "\n\n";
        else if (m.role == "user")
          out += "User: " + m.content + "<end_of_utterance>\n";
        else
          out += "Assistant: " + m.content + "<end_of_utterance>\n";
      }
      if (add_generation_prompt) out += "Assistant:";
      break;
  }
  return out;
}

std::vector<std::string> chat_template_stop_strings(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::None: return {};
    case ChatTemplate::ChatML: return {"<|im_end|>", "<|im_start|>"};
    case ChatTemplate::Llama3: return {"<|eot_id|>", "<|start_header_id|>"};
    case ChatTemplate::Gemma: return {"<end_of_turn>", "<start_of_turn>"};
    case ChatTemplate::Phi3: return {"<|end|>", "<|user|>"};
    case ChatTemplate::Lfm2: return {"<|im_end|>", "<|im_start|>"};
    case ChatTemplate::SmolVLM: return {"<end_of_utterance>", "\nUser:"};
  }
  return {};
}

}  // namespace edgevlm
