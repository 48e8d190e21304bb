// A tiny random-weight llama with a SentencePiece-style vocabulary, built in memory with the
// project's GGUF writer: the subject of the generation and CLI tests (header-only, tests only).
#pragma once

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "model/llm.h"
#include "model/tokenizer.h"

namespace edgevlm::testing_tiny {

struct TinyVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;  // 1 normal, 2 unknown, 3 control
};

inline TinyVocab tiny_vocab() {
  TinyVocab v;
  auto add = [&](const std::string& t, float score, int32_t type) {
    v.tokens.push_back(t);
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0, 2);
  add("<s>", 0, 3);
  add("</s>", 0, 3);
  add("<|im_start|>", 0, 3);
  add("<|im_end|>", 0, 3);
  add("\xe2\x96\x81", -1, 1);  // "▁"
  for (char c = 'a'; c <= 'z'; ++c) add(std::string(1, c), -2, 1);
  for (const char* w : {"the", "cat", "sat", "on", "mat", "hello", "world", "dog", "ran"})
    add(std::string("\xe2\x96\x81") + w, 1, 1);
  for (const char* p : {".", ",", "!", "?", "\xc3\xa9" /* é */, "\xe2\x82\xac" /* € */}) add(p, -1, 1);
  return v;
}

struct TinyModel {
  std::vector<uint8_t> bytes;
  std::unique_ptr<GGUFFile> gguf;
  std::unique_ptr<LlmModel> model;
  std::unique_ptr<Tokenizer> tok;
};

inline constexpr int kEmbd = 32, kLayers = 2, kHeads = 4, kHeadsKv = 2, kFf = 64, kCtx = 64;

inline std::unique_ptr<TinyModel> make_tiny_model(int32_t eos_id = 2, uint64_t seed = 7) {
  TinyVocab voc = tiny_vocab();
  const int n_vocab = static_cast<int>(voc.tokens.size());
  GGUFWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", "generate_test tiny");
  w.set_u32("llama.context_length", kCtx);
  w.set_u32("llama.embedding_length", kEmbd);
  w.set_u32("llama.block_count", kLayers);
  w.set_u32("llama.feed_forward_length", kFf);
  w.set_u32("llama.attention.head_count", kHeads);
  w.set_u32("llama.attention.head_count_kv", kHeadsKv);
  w.set_u32("llama.rope.dimension_count", kEmbd / kHeads);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_f32("llama.rope.freq_base", 10000.0f);
  w.set_u32("llama.vocab_size", n_vocab);
  w.set_string("tokenizer.ggml.model", "llama");
  w.set("tokenizer.ggml.tokens", GGUFValue::from_strings(voc.tokens));
  w.set("tokenizer.ggml.scores", GGUFValue::from_f32s(voc.scores));
  w.set("tokenizer.ggml.token_type", GGUFValue::from_i32s(voc.types));
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(eos_id));
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_string("tokenizer.chat_template",
               "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
               "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
               "{% endif %}");

  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto add = [&](const std::string& name, std::vector<int64_t> ne, float scale, float offset = 0) {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    std::vector<float> v(n);
    for (float& x : v) x = offset + scale * nd(rng);
    w.add_tensor_f32(name, GGMLType::F32, ne, v.data());
  };
  const int kv = kEmbd / kHeads * kHeadsKv;
  add("token_embd.weight", {kEmbd, n_vocab}, 1.0f);
  for (int l = 0; l < kLayers; ++l) {
    std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {kEmbd}, 0.1f, 1.0f);
    add(p + "attn_q.weight", {kEmbd, kEmbd}, 0.3f);
    add(p + "attn_k.weight", {kEmbd, kv}, 0.3f);
    add(p + "attn_v.weight", {kEmbd, kv}, 0.3f);
    add(p + "attn_output.weight", {kEmbd, kEmbd}, 0.3f);
    add(p + "ffn_norm.weight", {kEmbd}, 0.1f, 1.0f);
    add(p + "ffn_gate.weight", {kEmbd, kFf}, 0.3f);
    add(p + "ffn_up.weight", {kEmbd, kFf}, 0.3f);
    add(p + "ffn_down.weight", {kFf, kEmbd}, 0.3f);
  }
  add("output_norm.weight", {kEmbd}, 0.1f, 1.0f);
  add("output.weight", {kEmbd, n_vocab}, 0.5f);

  auto m = std::make_unique<TinyModel>();
  m->bytes = w.serialize();
  m->gguf = GGUFFile::from_memory(m->bytes.data(), m->bytes.size(), "tiny.gguf");
  m->model = LlmModel::load(*m->gguf);
  m->tok = Tokenizer::from_gguf(*m->gguf);
  return m;
}

}  // namespace edgevlm::testing_tiny
