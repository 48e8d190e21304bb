// libFuzzer target: chat templates (src/model/chat_template). The input is NUL-separated parts:
// a Jinja template string (recognised by its markers, and also tried as a --chat-template name),
// then role, content, role, content, ... of the messages. The messages are rendered with the
// detected form and with every other form, with and without the generation prompt.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "model/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgevlm;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> parts;
  size_t at = 0;
  while (true) {
    const size_t nul = in.find('\0', at);
    parts.push_back(in.substr(at, nul == std::string_view::npos ? std::string_view::npos : nul - at));
    if (nul == std::string_view::npos) break;
    at = nul + 1;
  }
  const std::optional<ChatTemplate> detected = detect_chat_template(parts[0]);
  try {
    (void)parse_chat_template_name(parts[0]);
  } catch (const Error&) {
  }
  std::vector<ChatMessage> messages;
  for (size_t i = 1; i < parts.size(); i += 2)
    messages.push_back({std::string(parts[i]), i + 1 < parts.size() ? std::string(parts[i + 1]) : std::string()});
  size_t total = 0;
  for (const ChatMessage& m : messages) total += m.role.size() + m.content.size();
  const ChatTemplate all[] = {ChatTemplate::None, ChatTemplate::ChatML, ChatTemplate::Llama3, ChatTemplate::Gemma,
                              ChatTemplate::Phi3, ChatTemplate::Lfm2, ChatTemplate::SmolVLM};
  for (const ChatTemplate t : all) {
    (void)chat_template_name(t);
    (void)chat_template_stop_strings(t);
    for (const bool gen : {true, false}) {
      const std::string out = apply_chat_template(t, messages, gen);
      // The rendering adds a bounded amount of markup per message around the verbatim contents.
      if (out.size() > total + 64 * (messages.size() + 2)) __builtin_trap();
    }
  }
  if (detected) (void)apply_chat_template(*detected, messages, true);
  return 0;
}
