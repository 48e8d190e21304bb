// Chat templates: turn {role, content} messages into the prompt text a chat model was trained on.
// GGUF files carry their template as Jinja source in `tokenizer.chat_template`; rather than run
// Jinja, we recognise the known forms by their marker tokens and render them in C++.
//   ChatML  (Qwen, many fine-tunes): <|im_start|>role\ncontent<|im_end|>\n ... <|im_start|>assistant\n
//   Llama-3: <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> ...
//            <|start_header_id|>assistant<|end_header_id|>\n\n
//   Gemma:   <bos><start_of_turn>user\n[system\n\n]content<end_of_turn>\n<start_of_turn>model\n
//            ("assistant" is "model"; the system message joins the first user turn)
//   Phi-3:   <|role|>\ncontent<|end|>\n ... <|assistant|>\n
//   LFM2:    <|startoftext|> then ChatML turns (LFM2 and LFM2-VL)
//   SmolVLM: <|im_start|>User: content<end_of_utterance>\nAssistant: ...<end_of_utterance>\nAssistant:
//            (one <|im_start|> at the start, the rest is not ChatML)
//   none:    the contents alone, joined by "\n" (for base models and raw prompts)
// The renderings and the order of recognition follow llama.cpp's llm_chat_apply_template and
// llm_chat_detect_template. Content is kept verbatim apart from Llama-3's and Gemma's trim, so
// image markers such as "<image>" survive for the vision path to splice.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edgevlm {

class GGUFFile;

enum class ChatTemplate { None, ChatML, Llama3, Gemma, Phi3, Lfm2, SmolVLM };

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

// "none", "chatml", "llama3", "gemma", "phi3", "lfm2", "smolvlm"
const char* chat_template_name(ChatTemplate t);
// Those names (and "raw" for none; case-insensitive); throws edgevlm::Error naming the accepted
// names otherwise. "auto" is the caller's business (see chat_template_for).
ChatTemplate parse_chat_template_name(std::string_view name);
// Recognises a Jinja template by its markers; nullopt when it is none of the known forms.
std::optional<ChatTemplate> detect_chat_template(std::string_view jinja);
// The form used when a file's template is not recognised: the prompt as is.
constexpr ChatTemplate kFallbackChatTemplate = ChatTemplate::None;
// The template a model asks for: detected from `tokenizer.chat_template`; None when the key is
// absent, kFallbackChatTemplate when it names an unknown form (`unknown`, when given, is set to
// true in that second case, and the caller must say so: see unknown_chat_template_warning).
ChatTemplate chat_template_from_gguf(const GGUFFile& f, bool* unknown = nullptr);
// Resolves a --chat-template value: "auto" → chat_template_from_gguf, anything else by name.
ChatTemplate chat_template_for(std::string_view name, const GGUFFile& f, bool* unknown = nullptr);

// The message for a file whose template is not recognised: names the fallback and the flag.
std::string unknown_chat_template_warning(const std::string& model_path);

// Renders the conversation; add_generation_prompt opens an assistant turn for the model to fill.
std::string apply_chat_template(ChatTemplate t, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt = true);

// Text that closes a turn in this form. Where the vocabulary has it as a special end-of-generation
// token generation stops on the token; where it does not (a small vocab that spells it out in
// pieces), stopping on the string does the same job.
std::vector<std::string> chat_template_stop_strings(ChatTemplate t);

}  // namespace edgevlm
