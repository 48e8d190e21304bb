#include "model/chat_template.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"
#include "formats/gguf.h"

namespace edgevlm {
namespace {

// Jinja sources as shipped in the GGUF files of Qwen2-Instruct and Meta-Llama-3-Instruct
// (tokenizer.chat_template), and Mistral-Instruct's as an unknown form.
const char* kQwen2Jinja =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const char* kLlama3Jinja =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim "
    "+ '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
const char* kMistralJinja =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + eos_token}}"
    "{% endif %}{% endfor %}";

// The markers of the other families' templates, as their Jinja sources use them (abridged: the
// message loops and the markers that tell the forms apart).
const char* kGemma3Jinja =
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = "
    "messages[0]['content'] + '\n\n' -%}{%- endif -%}{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{'<start_of_turn>model\n'}}{%- endif -%}";
const char* kPhi3Jinja =
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + "
    "'<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}";
const char* kSmolVlmJinja =
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type']"
    " == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == "
    "'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";
const char* kLfm2Jinja =
    "{{- bos_token -}}{%- set system_prompt = \"\" -%}{%- if tools -%}{%- set system_prompt = system_prompt + "
    "\"List of tools: <|tool_list_start|>[\" -%}{%- set system_prompt = system_prompt + \"]<|tool_list_end|>\" -%}"
    "{%- endif -%}{%- for message in messages -%}{{- \"<|im_start|>\" + message[\"role\"] + \"\\n\" -}}"
    "{{- content + \"<|im_end|>\\n\" -}}{%- endfor -%}{%- if add_generation_prompt -%}"
    "{{- \"<|im_start|>assistant\\n\" -}}{%- endif -%}";

TEST(ChatTemplateTest, DetectsKnownForms) {
  EXPECT_EQ(detect_chat_template(kGemma3Jinja), ChatTemplate::Gemma);
  EXPECT_EQ(detect_chat_template(kPhi3Jinja), ChatTemplate::Phi3);
  EXPECT_EQ(detect_chat_template(kSmolVlmJinja), ChatTemplate::SmolVLM);  // not ChatML, despite <|im_start|>
  EXPECT_EQ(detect_chat_template(kLfm2Jinja), ChatTemplate::Lfm2);
  EXPECT_EQ(detect_chat_template(kQwen2Jinja), ChatTemplate::ChatML);
  EXPECT_EQ(detect_chat_template(kLlama3Jinja), ChatTemplate::Llama3);
  EXPECT_EQ(detect_chat_template(kMistralJinja), std::nullopt);
  EXPECT_EQ(detect_chat_template(""), std::nullopt);
}

TEST(ChatTemplateTest, ParsesNames) {
  EXPECT_EQ(parse_chat_template_name("chatml"), ChatTemplate::ChatML);
  EXPECT_EQ(parse_chat_template_name("ChatML"), ChatTemplate::ChatML);
  EXPECT_EQ(parse_chat_template_name("llama3"), ChatTemplate::Llama3);
  EXPECT_EQ(parse_chat_template_name("none"), ChatTemplate::None);
  EXPECT_EQ(parse_chat_template_name("raw"), ChatTemplate::None);
  EXPECT_THROW(parse_chat_template_name("vicuna"), Error);
  for (ChatTemplate t : {ChatTemplate::None, ChatTemplate::ChatML, ChatTemplate::Llama3, ChatTemplate::Gemma,
                         ChatTemplate::Phi3, ChatTemplate::Lfm2, ChatTemplate::SmolVLM})
    EXPECT_EQ(parse_chat_template_name(chat_template_name(t)), t);
}

TEST(ChatTemplateTest, ChatMLMatchesTheJinjaRendering) {
  // Expected text is what the Qwen2 Jinja above renders for these messages (system given, so no
  // default system turn), written out by hand.
  std::vector<ChatMessage> msgs = {{"system", "Be brief."}, {"user", "Hi <image>\nwhat is this?"}};
  EXPECT_EQ(apply_chat_template(ChatTemplate::ChatML, msgs),
            "<|im_start|>system\nBe brief.<|im_end|>\n"
            "<|im_start|>user\nHi <image>\nwhat is this?<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(apply_chat_template(ChatTemplate::ChatML, {{"user", "x"}}, false),
            "<|im_start|>user\nx<|im_end|>\n");
}

TEST(ChatTemplateTest, Llama3MatchesTheJinjaRendering) {
  std::vector<ChatMessage> msgs = {{"system", "  Be brief.\n"},
                                   {"user", "<image>\nDescribe."},
                                   {"assistant", "A cat."},
                                   {"user", "Colour?"}};
  EXPECT_EQ(apply_chat_template(ChatTemplate::Llama3, msgs),
            "<|begin_of_text|>"
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\n<image>\nDescribe.<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nA cat.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nColour?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

// Expected texts: what the Jinja sources above render (and llama.cpp's llm_chat_apply_template
// writes) for these messages, written out by hand.
TEST(ChatTemplateTest, GemmaMergesSystemIntoFirstUserTurn) {
  std::vector<ChatMessage> msgs = {{"system", "Be brief. "}, {"user", " <image>\nDescribe."},
                                   {"assistant", "A cat."}, {"user", "Colour?"}};
  EXPECT_EQ(apply_chat_template(ChatTemplate::Gemma, msgs),
            "<bos><start_of_turn>user\nBe brief.\n\n<image>\nDescribe.<end_of_turn>\n"
            "<start_of_turn>model\nA cat.<end_of_turn>\n"
            "<start_of_turn>user\nColour?<end_of_turn>\n"
            "<start_of_turn>model\n");
}

TEST(ChatTemplateTest, Phi3Lfm2AndSmolVlm) {
  std::vector<ChatMessage> msgs = {{"system", "S"}, {"user", "<image>What is it?"}, {"assistant", "A dog."},
                                   {"user", "Sure?"}};
  EXPECT_EQ(apply_chat_template(ChatTemplate::Phi3, msgs),
            "<|system|>\nS<|end|>\n<|user|>\n<image>What is it?<|end|>\n<|assistant|>\nA dog.<|end|>\n"
            "<|user|>\nSure?<|end|>\n<|assistant|>\n");
  EXPECT_EQ(apply_chat_template(ChatTemplate::Lfm2, msgs),
            "<|startoftext|><|im_start|>system\nS<|im_end|>\n<|im_start|>user\n<image>What is it?<|im_end|>\n"
            "<|im_start|>assistant\nA dog.<|im_end|>\n<|im_start|>user\nSure?<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(apply_chat_template(ChatTemplate::SmolVLM, msgs),
            "<|im_start|>S\n\nUser: <image>What is it?<end_of_utterance>\nAssistant: A dog.<end_of_utterance>\n"
            "User: Sure?<end_of_utterance>\nAssistant:");
  EXPECT_EQ(apply_chat_template(ChatTemplate::SmolVLM, {{"user", "Hi"}}, false), "<|im_start|>User: Hi<end_of_utterance>\n");
}

TEST(ChatTemplateTest, NoneJoinsContentsVerbatim) {
  EXPECT_EQ(apply_chat_template(ChatTemplate::None, {{"user", " Once upon a time"}}), " Once upon a time");
  EXPECT_EQ(apply_chat_template(ChatTemplate::None, {{"system", "S"}, {"user", "U"}}), "S\nU");
}

TEST(ChatTemplateTest, StopStringsCloseATurn) {
  EXPECT_TRUE(chat_template_stop_strings(ChatTemplate::None).empty());
  auto c = chat_template_stop_strings(ChatTemplate::ChatML);
  EXPECT_NE(std::find(c.begin(), c.end(), "<|im_end|>"), c.end());
  auto l = chat_template_stop_strings(ChatTemplate::Llama3);
  EXPECT_NE(std::find(l.begin(), l.end(), "<|eot_id|>"), l.end());
  auto g = chat_template_stop_strings(ChatTemplate::Gemma);
  EXPECT_NE(std::find(g.begin(), g.end(), "<end_of_turn>"), g.end());
  auto p = chat_template_stop_strings(ChatTemplate::Phi3);
  EXPECT_NE(std::find(p.begin(), p.end(), "<|end|>"), p.end());
  auto sm = chat_template_stop_strings(ChatTemplate::SmolVLM);
  EXPECT_NE(std::find(sm.begin(), sm.end(), "<end_of_utterance>"), sm.end());
}

std::unique_ptr<GGUFFile> gguf_with(const char* jinja) {
  GGUFWriter w;
  w.set_string("general.architecture", "llama");
  if (jinja) w.set_string("tokenizer.chat_template", jinja);
  auto bytes = w.serialize();
  return GGUFFile::from_memory(bytes.data(), bytes.size(), "test.gguf");
}

TEST(ChatTemplateTest, FromGguf) {
  bool unknown = true;
  EXPECT_EQ(chat_template_from_gguf(*gguf_with(kQwen2Jinja), &unknown), ChatTemplate::ChatML);
  EXPECT_FALSE(unknown);
  EXPECT_EQ(chat_template_from_gguf(*gguf_with(kLlama3Jinja), &unknown), ChatTemplate::Llama3);
  EXPECT_FALSE(unknown);
  EXPECT_EQ(chat_template_from_gguf(*gguf_with(nullptr), &unknown), ChatTemplate::None);
  EXPECT_FALSE(unknown);
  EXPECT_EQ(chat_template_from_gguf(*gguf_with(kMistralJinja), &unknown), kFallbackChatTemplate);
  EXPECT_TRUE(unknown);
  // Unknown forms are reported with the fallback's name, never silently.
  const std::string warning = unknown_chat_template_warning("m.gguf");
  EXPECT_NE(warning.find("m.gguf"), std::string::npos);
  EXPECT_NE(warning.find(std::string("'") + chat_template_name(kFallbackChatTemplate) + "'"), std::string::npos);
  EXPECT_EQ(chat_template_from_gguf(*gguf_with(kSmolVlmJinja), &unknown), ChatTemplate::SmolVLM);
  EXPECT_FALSE(unknown);
  // An explicit name overrides what the file says.
  EXPECT_EQ(chat_template_for("llama3", *gguf_with(kQwen2Jinja)), ChatTemplate::Llama3);
  EXPECT_EQ(chat_template_for("auto", *gguf_with(kQwen2Jinja)), ChatTemplate::ChatML);
  EXPECT_EQ(chat_template_for("none", *gguf_with(kQwen2Jinja)), ChatTemplate::None);
  EXPECT_THROW(chat_template_for("bogus", *gguf_with(kQwen2Jinja)), Error);
}

}  // namespace
}  // namespace edgevlm
