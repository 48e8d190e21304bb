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
  }
  return "?";
}

ChatTemplate parse_chat_template_name(std::string_view name) {
  const std::string n = lower(name);
  if (n == "none" || n == "raw") return ChatTemplate::None;
  if (n == "chatml") return ChatTemplate::ChatML;
  if (n == "llama3" || n == "llama-3") return ChatTemplate::Llama3;
  fail("unknown chat template '%s' (expected chatml, llama3, none or auto)", std::string(name).c_str());
}

std::optional<ChatTemplate> detect_chat_template(std::string_view jinja) {
  // Llama-3 is checked first: its markers never occur in ChatML templates, while a template that
  // merely mentions <|im_start|> in passing is rarer still.
  if (jinja.find("<|start_header_id|>") != std::string_view::npos &&
      jinja.find("<|end_header_id|>") != std::string_view::npos)
    return ChatTemplate::Llama3;
  if (jinja.find("<|im_start|>") != std::string_view::npos) return ChatTemplate::ChatML;
  return std::nullopt;
}

ChatTemplate chat_template_from_gguf(const GGUFFile& f, bool* unknown) {
  if (unknown) *unknown = false;
  const std::string jinja = f.get_string_or("tokenizer.chat_template", "");
  if (jinja.empty()) return ChatTemplate::None;
  if (auto t = detect_chat_template(jinja)) return *t;
  if (unknown) *unknown = true;
  return ChatTemplate::None;
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
  }
  return out;
}

std::vector<std::string> chat_template_stop_strings(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::None: return {};
    case ChatTemplate::ChatML: return {"<|im_end|>", "<|im_start|>"};
    case ChatTemplate::Llama3: return {"<|eot_id|>", "<|start_header_id|>"};
  }
  return {};
}

}  // namespace edgevlm
