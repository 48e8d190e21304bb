// Decoder tests: llm_forward against the naive double-precision reference in llm_test_util.h
// (written separately from the engine's kernels), over both architectures, tied and untied
// outputs, QKV bias, GQA, partial rotary dimensions and every weight type; plus validation.
#include "model/llm.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>

#include "core/error.h"
#include "core/pages.h"
#include "model/kv_cache.h"
#include "model/llm_test_util.h"
#include "model/quantize.h"
#include "model/random_model.h"
#include "ops/cpu_features.h"
#include "ops/matmul_internal.h"

namespace edgevlm {
namespace {

using testing::make_tiny_model;
using testing::reference_forward;
using testing::TinySpec;

// bytes written to a temporary file and opened from it (mapped read-only, as models are); the
// file's name is removed at once. Null when it cannot be written.
std::unique_ptr<GGUFFile> open_mapped(const std::vector<uint8_t>& bytes, const std::string& tag) {
  const std::string path = ::testing::TempDir() + "edgevlm_llm_" + tag + "_" + std::to_string(getpid()) + ".gguf";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return nullptr;
  const bool written = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  std::fclose(f);
  auto file = written ? GGUFFile::open(path) : nullptr;
  std::remove(path.c_str());
  return file;
}

std::vector<int32_t> some_tokens(int n, int n_vocab, int seed = 3) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[size_t(i)] = int32_t((i * 7919 + seed * 31) % n_vocab);
  return t;
}

// Max |engine − reference| over all logits, divided by the reference's max |logit|.
double max_rel_error(const std::vector<float>& got, const std::vector<std::vector<double>>& ref, int n_vocab) {
  double err = 0, scale = 0;
  for (size_t t = 0; t < ref.size(); ++t)
    for (int v = 0; v < n_vocab; ++v) {
      err = std::max(err, std::fabs(double(got[t * n_vocab + size_t(v)]) - ref[t][size_t(v)]));
      scale = std::max(scale, std::fabs(ref[t][size_t(v)]));
    }
  return err / scale;
}

struct Case {
  const char* name;
  TinySpec spec;
  double tol;  // max error relative to the largest |logit|
};

std::vector<Case> cases() {
  std::vector<Case> cs;
  TinySpec s;
  // F32 weights: only float rounding separates engine and reference.
  s.arch = "llama"; s.n_head = 4; s.n_head_kv = 2;
  cs.push_back({"llama_f32_gqa_untied", s, 1e-4});
  s.tied = true; s.n_head_kv = 4;
  cs.push_back({"llama_f32_mha_tied", s, 1e-4});
  s = TinySpec(); s.arch = "qwen2"; s.qkv_bias = true; s.tied = true; s.n_head_kv = 1; s.freq_base = 1e6f;
  cs.push_back({"qwen2_f32_bias_tied_mqa", s, 1e-4});
  s.tied = false; s.n_head_kv = 2; s.n_rot = 8;  // rotate only half of each 16-wide head
  cs.push_back({"qwen2_f32_bias_untied_partial_rot", s, 1e-4});
  s = TinySpec(); s.n_rot = 6;
  cs.push_back({"llama_f32_partial_rot", s, 1e-4});
  // F16 / BF16 weights: the reference dequantizes the same values, so still tight.
  s = TinySpec(); s.wtype = GGMLType::F16;
  cs.push_back({"llama_f16", s, 1e-4});
  s.arch = "qwen2"; s.wtype = GGMLType::BF16; s.qkv_bias = true;
  cs.push_back({"qwen2_bf16", s, 1e-4});
  // Q8_0 / Q4_0: the AVX2 kernels also quantize activations to 8 bits (as ggml does), which
  // the float reference does not; 8-bit activations cost about 0.5% per product.
  s = TinySpec(); s.wtype = GGMLType::Q8_0;
  cs.push_back({"llama_q8_0", s, 3e-2});
  s.arch = "qwen2"; s.wtype = GGMLType::Q4_0; s.qkv_bias = true; s.tied = true;
  cs.push_back({"qwen2_q4_0_tied", s, 3e-2});
  return cs;
}

TEST(LlmForward, MatchesNaiveReference) {
  for (int threads : {1, 3}) {
    ThreadPool pool(threads);
    for (const Case& c : cases()) {
      SCOPED_TRACE(std::string(c.name) + " threads=" + std::to_string(threads));
      auto tm = make_tiny_model(c.spec);
      const LlmConfig& cfg = tm.model->config();
      const int T = 9;
      std::vector<int32_t> toks = some_tokens(T, cfg.n_vocab);
      std::vector<float> emb(size_t(T) * cfg.n_embd);
      tm.model->embed_tokens(toks.data(), T, emb.data());
      KvCache cache(cfg, 32);
      std::vector<float> logits(size_t(T) * cfg.n_vocab);
      llm_forward(*tm.model, cache, emb.data(), T, logits.data(), true, pool);
      EXPECT_EQ(cache.n_past(), T);
      auto ref = reference_forward(*tm.file, toks);
      EXPECT_LE(max_rel_error(logits, ref, cfg.n_vocab), c.tol);
    }
  }
}

TEST(LlmForward, ConfigFromKeys) {
  TinySpec s;
  s.arch = "qwen2"; s.qkv_bias = true; s.tied = true; s.n_rot = 8; s.freq_base = 5e5f; s.eps = 1e-6f;
  auto tm = make_tiny_model(s);
  const LlmConfig& c = tm.model->config();
  EXPECT_EQ(c.arch, "qwen2");
  EXPECT_EQ(c.n_vocab, s.n_vocab);
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_layer, 2);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_head_kv, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.n_ff, 96);
  EXPECT_EQ(c.n_ctx_train, 256);
  EXPECT_EQ(c.n_rot, 8);
  EXPECT_FLOAT_EQ(c.rope_freq_base, 5e5f);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-6f);
  EXPECT_EQ(c.rope_type, RopeType::NeoX);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_TRUE(c.tied_output);
  auto tl = make_tiny_model(TinySpec());
  EXPECT_EQ(tl.model->config().rope_type, RopeType::Normal);
  EXPECT_FALSE(tl.model->config().tied_output);
  EXPECT_EQ(tl.model->config().n_rot, 16);
}

// Feeding positions one at a time (decode) must give the batch's logits at every position.
TEST(LlmForward, IncrementalEqualsBatch) {
  ThreadPool pool(2);
  for (GGMLType wt : {GGMLType::F32, GGMLType::Q4_0}) {
    TinySpec s;
    s.wtype = wt;
    auto tm = make_tiny_model(s);
    const LlmConfig& cfg = tm.model->config();
    const int T = 6;
    std::vector<int32_t> toks = some_tokens(T, cfg.n_vocab, 5);
    std::vector<float> emb(size_t(T) * cfg.n_embd);
    tm.model->embed_tokens(toks.data(), T, emb.data());
    KvCache c1(cfg, 16), c2(cfg, 16);
    std::vector<float> all(size_t(T) * cfg.n_vocab), one(size_t(cfg.n_vocab));
    llm_forward(*tm.model, c1, emb.data(), T, all.data(), true, pool);
    for (int t = 0; t < T; ++t) {
      llm_forward(*tm.model, c2, emb.data() + t * cfg.n_embd, 1, one.data(), false, pool);
      for (int v = 0; v < cfg.n_vocab; ++v)
        ASSERT_NEAR(one[size_t(v)], all[size_t(t) * cfg.n_vocab + size_t(v)], 1e-4f) << "pos " << t;
    }
    EXPECT_EQ(c2.n_past(), T);
  }
}

// The other families, written as llama.cpp's converter writes them (gen-model), read with their
// conventions. Their logits are checked against the numpy reference and llama.cpp by
// tests/parity/; here: the config each file yields, and that one position at a time (decode:
// the sliding window's row-by-row path, the fused views, the q/k norms) gives the batch's logits.
struct ArchCase {
  const char* arch;
  void (*tweak)(RandomLlamaSpec&);
};
const ArchCase kArchCases[] = {
    {"llama", [](RandomLlamaSpec& s) { s.llama3_factor = 8, s.llama3_orig_ctx = 32; }},
    {"qwen3", [](RandomLlamaSpec& s) { s.head_dim = 32, s.tied_output = true; }},
    {"gemma3", [](RandomLlamaSpec& s) { s.n_layer = 7, s.n_swa = 3, s.head_dim = 32, s.tied_output = true; }},
    {"phi3", [](RandomLlamaSpec& s) { s.n_rot = 12, s.longrope_orig_ctx = 16; }},
    {"lfm2", [](RandomLlamaSpec& s) { s.n_layer = 3, s.attn_layers = {1}, s.tied_output = true; }},
    {"qwen2vl", [](RandomLlamaSpec& s) { s.rope_sections = {2, 3, 3}, s.qkv_bias = true; }},
    {"qwen2", [](RandomLlamaSpec& s) { s.qkv_bias = true; }},
};

std::unique_ptr<GGUFFile> write_arch(const ArchCase& ac, GGMLType wt = GGMLType::F32) {
  RandomLlamaSpec s;
  s.arch = ac.arch;
  s.n_embd = 64, s.n_layer = 2, s.n_head = 4, s.n_head_kv = 2, s.n_ff = 96, s.n_ctx = 64, s.n_vocab = 50;
  s.weight_type = wt;
  ac.tweak(s);
  const std::string path = ::testing::TempDir() + "edgevlm_arch_" + ac.arch + "_" + std::to_string(getpid()) + ".gguf";
  write_random_llama(path, s);
  auto f = GGUFFile::open(path);
  std::remove(path.c_str());
  return f;
}

TEST(LlmArch, ConfigFollowsEachFamily) {
  for (const ArchCase& ac : kArchCases) {
    SCOPED_TRACE(ac.arch);
    auto f = write_arch(ac);
    auto m = LlmModel::load(*f);
    const LlmConfig& c = m->config();
    const std::string a = ac.arch;
    EXPECT_EQ(c.rope_type, a == "llama" ? RopeType::Normal : RopeType::NeoX);
    EXPECT_EQ(c.qk_norm, a == "qwen3" || a == "gemma3" || a == "lfm2");
    EXPECT_EQ(c.post_norms, a == "gemma3");
    EXPECT_EQ(c.ffn_act, a == "gemma3" ? FfnAct::GeluTanh : FfnAct::SiLU);
    EXPECT_EQ(c.fused_qkv && c.fused_gate_up, a == "phi3");
    EXPECT_FLOAT_EQ(c.embd_scale, a == "gemma3" ? 8.0f : 1.0f);
    EXPECT_FLOAT_EQ(c.attn_scale, 1.0f / std::sqrt(float(c.head_dim)));
    EXPECT_EQ(m->rope_factors(64) != nullptr, a == "llama" || a == "phi3");
    if (a == "qwen3" || a == "gemma3") {
      EXPECT_EQ(c.head_dim, 32);
    }
    EXPECT_EQ(c.mrope, a == "qwen2vl");
    if (a == "qwen2vl") {
      EXPECT_EQ(c.rope_sections.t + c.rope_sections.h + c.rope_sections.w, 8);
    }
    if (a == "gemma3") {
      // Pattern 6: layers 0-4 local, 5 global, 6 local; local RoPE base 10000.
      EXPECT_EQ(c.n_swa, 3);
      for (int l = 0; l < 7; ++l) EXPECT_EQ(c.is_swa(l), l != 5) << l;
      EXPECT_FLOAT_EQ(c.rope_freq_base_swa, 10000.0f);
    }
    if (a == "lfm2") {  // layer 1 attention, 0 and 2 convolutions of 3 taps
      EXPECT_EQ(c.conv_kernel, 3);
      EXPECT_TRUE(c.is_conv(0) && !c.is_conv(1) && c.is_conv(2));
      EXPECT_EQ(c.n_head_kv, 2);
      EXPECT_EQ(c.output_norm_name, "token_embd_norm.weight");
    }
    if (a == "phi3") {
      // LongRoPE: the long factors beyond the original context of 16, the short ones within it.
      EXPECT_EQ(c.n_rot, 12);
      EXPECT_EQ(c.n_ctx_orig, 16);
      EXPECT_NE(m->rope_factors(64), m->rope_factors(16));
      EXPECT_GT(c.rope_attn_factor, 1.0f);
    }
  }
}

// attention.sliding_window_pattern as a period or as per-layer flags (both as llama.cpp reads).
TEST(LlmArch, GemmaSlidingWindowPatternForms) {
  GGUFWriter w;
  w.set_string("general.architecture", "gemma3");
  for (const char* k : {"gemma3.embedding_length", "gemma3.feed_forward_length", "gemma3.context_length"})
    w.set_u32(k, 64);
  w.set_u32("gemma3.block_count", 4);
  w.set_u32("gemma3.attention.head_count", 4);
  w.set_f32("gemma3.attention.layer_norm_rms_epsilon", 1e-6f);
  w.set_u32("gemma3.attention.sliding_window", 8);
  std::vector<float> z(64 * 10, 0.01f);
  w.add_tensor_f32("token_embd.weight", GGMLType::F32, {64, 10}, z.data());
  auto config = [&](GGUFWriter& ww) {
    auto bytes = ww.serialize();
    auto f = GGUFFile::from_memory(bytes.data(), bytes.size(), "p.gguf");
    return LlmConfig::from_gguf(*f);
  };
  LlmConfig c = config(w);  // default period 6: all four local
  for (int l = 0; l < 4; ++l) EXPECT_TRUE(c.is_swa(l)) << l;
  w.set_u32("gemma3.attention.sliding_window_pattern", 2);
  c = config(w);
  EXPECT_TRUE(c.is_swa(0) && !c.is_swa(1) && c.is_swa(2) && !c.is_swa(3));
  std::vector<GGUFValue> flags = {GGUFValue::from_bool(false), GGUFValue::from_bool(true), GGUFValue::from_bool(true),
                                  GGUFValue::from_bool(false)};
  w.set("gemma3.attention.sliding_window_pattern", GGUFValue::from_array(GGUFType::BOOL, flags));
  c = config(w);
  EXPECT_TRUE(!c.is_swa(0) && c.is_swa(1) && c.is_swa(2) && !c.is_swa(3));
  flags.pop_back();
  w.set("gemma3.attention.sliding_window_pattern", GGUFValue::from_array(GGUFType::BOOL, flags));
  EXPECT_THROW(config(w), Error);  // 3 flags for 4 layers
}

TEST(LlmArch, IncrementalEqualsBatch) {
  ThreadPool pool(2);
  for (const ArchCase& ac : kArchCases) {
    for (GGMLType wt : {GGMLType::F32, GGMLType::Q8_0}) {
      SCOPED_TRACE(std::string(ac.arch) + " " + type_name(wt));
      auto f = write_arch(ac, wt);
      auto m = LlmModel::load(*f, &pool);
      const LlmConfig& cfg = m->config();
      const int T = 9;  // past gemma3's window of 3
      std::vector<int32_t> toks = some_tokens(T, cfg.n_vocab, 5);
      std::vector<float> emb(size_t(T) * cfg.n_embd);
      m->embed_tokens(toks.data(), T, emb.data());
      KvCache c1(cfg, 32), c2(cfg, 32);
      std::vector<float> all(size_t(T) * cfg.n_vocab), one(size_t(cfg.n_vocab));
      llm_forward(*m, c1, emb.data(), T, all.data(), true, pool);
      double scale = 0;
      for (float x : all) scale = std::max(scale, double(std::fabs(x)));
      for (int t = 0; t < T; ++t) {
        llm_forward(*m, c2, emb.data() + t * cfg.n_embd, 1, one.data(), false, pool);
        for (int v = 0; v < cfg.n_vocab; ++v)
          ASSERT_NEAR(one[size_t(v)], all[size_t(t) * cfg.n_vocab + size_t(v)], 1e-4 * scale) << "pos " << t;
      }
    }
  }
}

// Qwen2-VL's M-RoPE: text alone is qwen2's NeoX RoPE (the same weights give the same logits); an
// image grid takes 2-D coordinates and advances the position by its longer side, whether the
// prefill cuts it or not, and a truncated cache continues from the right position.
TEST(LlmArch, Qwen2VLImageGridPositions) {
  ThreadPool pool(2);
  auto fv = write_arch(kArchCases[5]), fq = write_arch(kArchCases[6]);
  auto mv = LlmModel::load(*fv), mq = LlmModel::load(*fq);
  const LlmConfig& cfg = mv->config();
  const int T = 19;  // 3 text, a 4 × 3 image grid, 4 text
  const PositionSpan grid{3, 15, false, 4, 3};
  std::vector<int32_t> toks = some_tokens(T, cfg.n_vocab, 9);
  std::vector<float> emb(size_t(T) * cfg.n_embd);
  mv->embed_tokens(toks.data(), T, emb.data());
  auto logits = [&](const LlmModel& m, const std::vector<PositionSpan>& spans, int chunk, KvCache& c) {
    std::vector<float> out(size_t(cfg.n_vocab));
    for (int done = 0; done < T; done += chunk) {
      std::vector<PositionSpan> abs = spans;  // llm_forward takes absolute positions: the cache starts empty
      llm_forward(m, c, emb.data() + size_t(done) * cfg.n_embd, std::min(chunk, T - done), out.data(), false, pool, abs);
    }
    return out;
  };
  KvCache a(cfg, 32), b(cfg, 32);
  const std::vector<float> text_v = logits(*mv, {}, T, a), text_q = logits(*mq, {}, T, b);
  for (int v = 0; v < cfg.n_vocab; ++v) ASSERT_NEAR(text_v[size_t(v)], text_q[size_t(v)], 1e-5f) << v;
  EXPECT_EQ(a.next_position(), T);

  KvCache whole(cfg, 32);
  const std::vector<float> want = logits(*mv, {grid}, T, whole);
  EXPECT_EQ(whole.next_position(), 3 + 4 + 4);  // the grid advances by max(4, 3)
  float diff = 0, scale = 0;
  for (int v = 0; v < cfg.n_vocab; ++v) {
    diff = std::max(diff, std::fabs(want[size_t(v)] - text_v[size_t(v)]));
    scale = std::max(scale, std::fabs(want[size_t(v)]));
  }
  EXPECT_GT(diff, 1e-3f * scale);  // the coordinates change the answer
  for (int chunk : {1, 5, 7}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    KvCache c(cfg, 32);
    const std::vector<float> got = logits(*mv, {grid}, chunk, c);
    for (int v = 0; v < cfg.n_vocab; ++v) ASSERT_NEAR(got[size_t(v)], want[size_t(v)], 1e-4f * scale) << v;
    EXPECT_EQ(c.next_position(), 11);
  }
  // Back to the end of the image, the text again: the same answer.
  whole.truncate(15);
  EXPECT_EQ(whole.next_position(), 7);
  std::vector<float> again(size_t(cfg.n_vocab));
  llm_forward(*mv, whole, emb.data() + size_t(15) * cfg.n_embd, 4, again.data(), false, pool);
  for (int v = 0; v < cfg.n_vocab; ++v) ASSERT_NEAR(again[size_t(v)], want[size_t(v)], 1e-4f * scale) << v;
  // A grid whose size does not match its positions is refused.
  KvCache bad(cfg, 32);
  EXPECT_THROW(llm_forward(*mv, bad, emb.data(), T, again.data(), false, pool, {{3, 15, false, 5, 3}}), Error);
}

// LFM2's convolution state lives in the KvCache: clear() starts a fresh sequence (same logits
// again), and going back to an earlier position is refused (the state holds no history).
TEST(LlmArch, Lfm2ConvolutionStateInTheCache) {
  ThreadPool pool(1);
  auto f = write_arch(kArchCases[4]);
  auto m = LlmModel::load(*f);
  const LlmConfig& cfg = m->config();
  std::vector<int32_t> toks = some_tokens(4, cfg.n_vocab, 2);
  std::vector<float> emb(size_t(4) * cfg.n_embd), a(size_t(cfg.n_vocab)), b(size_t(cfg.n_vocab));
  m->embed_tokens(toks.data(), 4, emb.data());
  KvCache cache(cfg, 16);
  llm_forward(*m, cache, emb.data(), 4, a.data(), false, pool);
  EXPECT_THROW(cache.truncate(2), Error);
  EXPECT_THROW(cache.conv_state(1), Error);  // the attention layer has none
  std::vector<float> row(size_t(cfg.n_head_kv * cfg.head_dim));
  EXPECT_THROW(cache.read(0, 0, row.data(), nullptr), Error);  // convolution layers keep no K/V rows
  // K and V of the one attention layer (16 positions × 2 heads × 16, F32) and the state of the
  // convolutions (2 past inputs × 64 per layer slot).
  EXPECT_EQ(cache.bytes(), size_t(2 * 16 * 32 * 4 + 3 * 2 * 64 * 4));
  cache.clear();
  llm_forward(*m, cache, emb.data(), 4, b.data(), false, pool);
  EXPECT_EQ(a, b);
  cache.truncate(0);  // also a fresh sequence
  llm_forward(*m, cache, emb.data(), 4, b.data(), false, pool);
  EXPECT_EQ(a, b);
}

// `edgevlm quantize` takes every family; the results load, and LFM2's 3-tap convolution stays F32
// (its rows of 3 fill no block), as llama-quantize leaves it.
TEST(LlmArch, QuantizedFilesOfEachFamilyLoad) {
  for (const ArchCase& ac : kArchCases) {
    SCOPED_TRACE(ac.arch);
    RandomLlamaSpec s;
    s.arch = ac.arch;
    s.n_embd = 64, s.n_layer = 2, s.n_head = 4, s.n_head_kv = 2, s.n_ff = 96, s.n_ctx = 64, s.n_vocab = 50;
    ac.tweak(s);
    const std::string in = ::testing::TempDir() + "edgevlm_archq_in_" + std::to_string(getpid()) + ".gguf";
    const std::string out = ::testing::TempDir() + "edgevlm_archq_out_" + std::to_string(getpid()) + ".gguf";
    write_random_llama(in, s);
    quantize_gguf(in, out, QuantScheme::Q4_0);
    auto f = GGUFFile::open(out);
    EXPECT_NO_THROW(LlmModel::load(*f));
    EXPECT_EQ(f->tensor("blk.0.ffn_down.weight").type, GGMLType::Q4_0);
    if (s.arch == "lfm2") {
      EXPECT_EQ(f->tensor("blk.0.shortconv.conv.weight").type, GGMLType::F32);
    }
    std::remove(in.c_str());
    std::remove(out.c_str());
  }
}

TEST(LlmArch, GemmaScalesTokenEmbeddings) {
  auto f = write_arch(kArchCases[2]);
  auto m = LlmModel::load(*f);
  std::vector<float> e(64);
  const int32_t id = 7;
  m->embed_tokens(&id, 1, e.data());
  const GGUFTensorInfo& t = f->tensor("token_embd.weight");
  const float* row = reinterpret_cast<const float*>(t.data) + 7 * 64;
  for (int i = 0; i < 64; ++i) EXPECT_FLOAT_EQ(e[size_t(i)], row[i] * 8.0f);
}

// llm_forward reuses its activation buffers per thread: calls with more, then fewer positions
// (IncrementalEqualsBatch) and calls from several threads at once must not see each other's data.
TEST(LlmForward, ConcurrentCallsFromSeveralThreads) {
  auto tm = make_tiny_model(TinySpec());
  const LlmConfig& cfg = tm.model->config();
  const int T = 5;
  std::vector<int32_t> toks = some_tokens(T, cfg.n_vocab, 9);
  std::vector<float> emb(size_t(T) * cfg.n_embd);
  tm.model->embed_tokens(toks.data(), T, emb.data());
  auto forward = [&](int n) {
    ThreadPool pool(1);
    KvCache cache(cfg, 16);
    std::vector<float> logits(size_t(n) * cfg.n_vocab);
    llm_forward(*tm.model, cache, emb.data(), n, logits.data(), true, pool);
    return logits;
  };
  const std::vector<float> ref5 = forward(5), ref3 = forward(3);
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int it = 0; it < 20; ++it) mismatches[size_t(t)] += (t % 2 ? forward(3) != ref3 : forward(5) != ref5);
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(mismatches[size_t(t)], 0) << "thread " << t;
}

TEST(LlmForward, ErrorsOnContextOverflowAndBadTokens) {
  ThreadPool pool(1);
  auto tm = make_tiny_model(TinySpec());
  const LlmConfig& cfg = tm.model->config();
  KvCache cache(cfg, 4);
  std::vector<float> emb(size_t(5) * cfg.n_embd, 0.1f), logits(size_t(cfg.n_vocab));
  EXPECT_THROW(llm_forward(*tm.model, cache, emb.data(), 5, logits.data(), false, pool), Error);
  EXPECT_EQ(cache.n_past(), 0);
  llm_forward(*tm.model, cache, emb.data(), 4, logits.data(), false, pool);
  EXPECT_THROW(llm_forward(*tm.model, cache, emb.data(), 1, logits.data(), false, pool), Error);
  int32_t bad[2] = {1, cfg.n_vocab};
  EXPECT_THROW(tm.model->embed_tokens(bad, 2, emb.data()), Error);
  int32_t neg = -1;
  EXPECT_THROW(tm.model->embed_tokens(&neg, 1, emb.data()), Error);
}

// Loading with a pool repacks every matrix at once and gives back the file pages each copy
// replaces (read-only mapping). Embedding rows are still read from the table — when the output is
// tied to it, from pages given back and faulted in again — and every embedding and logit is bit
// for bit what the model computes with the originals kept resident.
TEST(LlmLoad, PreparedWeightsReplaceFilePagesSameResults) {
  ThreadPool pool(2);
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied output" : "untied output");
    TinySpec s;  // matrices of 34 KiB and more: all of them repacked by the AVX2 kernels
    s.n_embd = 256, s.n_ff = 512, s.n_vocab = 300, s.n_head = 4, s.n_head_kv = 2, s.tied = tied;
    s.wtype = GGMLType::Q8_0;
    const std::vector<uint8_t> bytes = testing::build_tiny_gguf(s);
    auto file = open_mapped(bytes, "prepare");
    ASSERT_NE(file, nullptr);
    const int T = 7;
    auto run = [&](const LlmModel& m) {
      const LlmConfig& cfg = m.config();
      std::vector<int32_t> toks = some_tokens(T, cfg.n_vocab);
      std::vector<float> out(size_t(T) * cfg.n_embd), logits(size_t(T) * cfg.n_vocab);
      m.embed_tokens(toks.data(), T, out.data());
      KvCache cache(cfg, 16);
      llm_forward(m, cache, out.data(), T, logits.data(), true, pool);
      out.insert(out.end(), logits.begin(), logits.end());
      return out;
    };
    detail::matmul_packed_clear();
    const bool was = detail::matmul_release_originals(false);
    std::vector<float> kept;
    {
      auto m = LlmModel::load(*file);  // repacked on first use, originals kept
      kept = run(*m);
    }
    detail::matmul_release_originals(true);
    const size_t released0 = detail::matmul_released_bytes();
    auto m = LlmModel::load(*file, &pool);
    const size_t released = detail::matmul_released_bytes() - released0;
    if (cpu_has_avx2()) {
      // All matrices: the 2 × 7 of the layers, plus the output (the embedding table when tied).
      EXPECT_EQ(detail::matmul_packed_count(), 15u);
      EXPECT_GE(released, m->weight_bytes_per_token() / 2);  // less the pages the fingerprints read
    }
    const std::vector<float> got = run(*m);
    ASSERT_EQ(got.size(), kept.size());
    EXPECT_EQ(std::memcmp(got.data(), kept.data(), got.size() * sizeof(float)), 0);
    // The model frees its copies with it.
    m.reset();
    EXPECT_EQ(detail::matmul_packed_count(), 0u);
    detail::matmul_release_originals(was);
  }
}

// Embedding rows are copied out of the mapped table and the table's pages given back: a kernel
// that maps file pages by large folios would otherwise keep up to 2 MiB around every row looked
// up resident (most of a 272 MB table after a few hundred tokens). The rows read are the same as
// from the file's bytes in memory, before and after the pages go.
TEST(LlmLoad, EmbeddingLookupsLeaveTheTableOutOfMemory) {
  TinySpec s;
  s.n_embd = 256, s.n_ff = 512, s.n_vocab = 4096, s.n_head = 4, s.n_head_kv = 2;  // table: 4096 rows of 272 B
  s.wtype = GGMLType::Q8_0;
  const std::vector<uint8_t> bytes = testing::build_tiny_gguf(s);
  auto file = open_mapped(bytes, "embd");
  ASSERT_NE(file, nullptr);
  auto mapped = LlmModel::load(*file);  // no pool: the matrices' pages are not touched
  auto in_memory = make_tiny_model(s);
  const int T = 64;
  std::vector<int32_t> toks(T);
  for (int i = 0; i < T; ++i) toks[size_t(i)] = (i * 997) % s.n_vocab;  // spread over all the table's pages
  std::vector<float> want(size_t(T) * s.n_embd), got(want.size());
  in_memory.model->embed_tokens(toks.data(), T, want.data());
  const uint8_t* table = mapped->token_embd().data;
  const size_t table_bytes = mapped->token_embd().bytes();
  for (int pass = 0; pass < 2; ++pass) {
    std::fill(got.begin(), got.end(), 0.0f);
    mapped->embed_tokens(toks.data(), T, got.data());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << "pass " << pass;
    // The 64 rows lie on 64 different pages; only the table's partial first and last pages stay.
    const long long resident = range_resident_bytes(table, table_bytes);
    if (resident >= 0) {
      EXPECT_LE(resident, 2 * sysconf(_SC_PAGESIZE)) << "pass " << pass;
    }
  }
}

TEST(KvCacheTest, SizeAndBookkeeping) {
  auto tm = make_tiny_model(TinySpec());
  const LlmConfig& cfg = tm.model->config();
  KvCache cache(cfg, 100);
  EXPECT_EQ(cache.n_ctx(), 100);
  EXPECT_EQ(cache.kv_dim(), cfg.n_head_kv * cfg.head_dim);
  EXPECT_EQ(cache.bytes(), size_t(2) * cfg.n_layer * 100 * cfg.n_head_kv * cfg.head_dim * sizeof(float));
  std::vector<float> k(size_t(3) * cache.kv_dim()), v(k.size());
  for (size_t i = 0; i < k.size(); ++i) k[i] = float(i), v[i] = -float(i);
  cache.write(1, 5, 3, k.data(), v.data());
  EXPECT_EQ(cache.k_f32(1)[5 * cache.kv_dim() + 7], 7.0f);
  EXPECT_EQ(cache.v_f32(1)[7 * cache.kv_dim()], -float(2 * cache.kv_dim()));
  EXPECT_THROW(cache.write(1, 98, 3, k.data(), v.data()), Error);
  EXPECT_THROW(cache.write(cfg.n_layer, 0, 1, k.data(), v.data()), Error);
  cache.advance(10);
  EXPECT_EQ(cache.n_past(), 10);
  cache.truncate(4);
  EXPECT_EQ(cache.n_past(), 4);
  EXPECT_THROW(cache.truncate(5), Error);
  EXPECT_THROW(cache.advance(97), Error);
  cache.clear();
  EXPECT_EQ(cache.n_past(), 0);
  EXPECT_THROW(KvCache(cfg, 0), Error);
}

// ---- validation: every fault names what is wrong ------------------------------------------

std::string load_error(const GGUFWriter& w) {
  std::vector<uint8_t> b = w.serialize();
  auto f = GGUFFile::from_memory(b.data(), b.size(), "bad.gguf");
  try {
    LlmModel::load(*f);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A valid tiny llama written key by key, so each test can break one thing.
GGUFWriter tiny_writer(int q_rows = 64, GGMLType q_type = GGMLType::F32, bool drop_ffn_up = false,
                       int head_count_kv = 2, const char* arch = "llama", bool only_q_bias = false) {
  GGUFWriter w;
  std::string a = std::string(arch) + ".";
  w.set_string("general.architecture", arch);
  w.set_u32(a + "embedding_length", 64);
  w.set_u32(a + "block_count", 1);
  w.set_u32(a + "attention.head_count", 4);
  w.set_u32(a + "attention.head_count_kv", uint32_t(head_count_kv));
  w.set_u32(a + "feed_forward_length", 96);
  w.set_u32(a + "context_length", 128);
  w.set_f32(a + "attention.layer_norm_rms_epsilon", 1e-5f);
  std::vector<float> z(64 * 200, 0.01f);
  w.add_tensor_f32("token_embd.weight", GGMLType::F32, {64, 10}, z.data());
  w.add_tensor_f32("blk.0.attn_norm.weight", GGMLType::F32, {64}, z.data());
  w.add_tensor_f32("blk.0.attn_q.weight", q_type, {64, q_rows}, z.data());
  if (only_q_bias) w.add_tensor_f32("blk.0.attn_q.bias", GGMLType::F32, {64}, z.data());
  w.add_tensor_f32("blk.0.attn_k.weight", GGMLType::F32, {64, 32}, z.data());
  w.add_tensor_f32("blk.0.attn_v.weight", GGMLType::F32, {64, 32}, z.data());
  w.add_tensor_f32("blk.0.attn_output.weight", GGMLType::F32, {64, 64}, z.data());
  w.add_tensor_f32("blk.0.ffn_norm.weight", GGMLType::F32, {64}, z.data());
  w.add_tensor_f32("blk.0.ffn_gate.weight", GGMLType::F32, {64, 96}, z.data());
  if (!drop_ffn_up) w.add_tensor_f32("blk.0.ffn_up.weight", GGMLType::F32, {64, 96}, z.data());
  w.add_tensor_f32("blk.0.ffn_down.weight", GGMLType::F32, {96, 64}, z.data());
  w.add_tensor_f32("output_norm.weight", GGMLType::F32, {64}, z.data());
  return w;
}

TEST(LlmLoad, ValidTinyWriterLoads) { EXPECT_EQ(load_error(tiny_writer()), ""); }

TEST(LlmLoad, WrongShapeNamesTensor) {
  std::string e = load_error(tiny_writer(48));
  EXPECT_NE(e.find("blk.0.attn_q.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[64, 48]"), std::string::npos) << e;
}

TEST(LlmLoad, MissingTensorNamed) {
  std::string e = load_error(tiny_writer(64, GGMLType::F32, true));
  EXPECT_NE(e.find("blk.0.ffn_up.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
}

TEST(LlmLoad, BadHeadCountsAndArch) {
  std::string e = load_error(tiny_writer(64, GGMLType::F32, false, 3));
  EXPECT_NE(e.find("head_count_kv"), std::string::npos) << e;
  e = load_error(tiny_writer(64, GGMLType::F32, false, 2, "gpt2"));
  EXPECT_NE(e.find("gpt2"), std::string::npos) << e;
  EXPECT_NE(e.find(supported_llm_archs()), std::string::npos) << e;  // lists what is supported
  EXPECT_NE(supported_llm_archs().find("gemma3"), std::string::npos);
  e = load_error(tiny_writer(64, GGMLType::F32, false, 2, "llama", true));
  EXPECT_NE(e.find("blk.0.attn_k.bias"), std::string::npos) << e;
  GGUFWriter w = tiny_writer();
  w.set_u32("llama.block_count", 0);
  e = load_error(w);
  EXPECT_NE(e.find("llama.block_count"), std::string::npos) << e;
  GGUFWriter w2 = tiny_writer();
  w2.set_string("llama.embedding_length", "wide");
  EXPECT_NE(load_error(w2), "");
}

TEST(LlmLoad, MissingKeyNamed) {
  GGUFWriter w;
  w.set_string("general.architecture", "llama");
  std::string e = load_error(w);
  EXPECT_NE(e.find("llama.embedding_length"), std::string::npos) << e;
}

}  // namespace
}  // namespace edgevlm
