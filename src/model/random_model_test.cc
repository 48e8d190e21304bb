#include "model/random_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <unistd.h>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"

namespace edgevlm {
namespace {

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("edgevlm_random_model_" + std::to_string(::getpid()) + "_" + name)).string();
}

std::vector<char> slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

std::vector<float> values(const GGUFTensorInfo& t) {
  std::vector<float> v(size_t(t.n_elements()));
  const size_t rb = row_bytes(t.type, t.ne[0]);
  for (int64_t r = 0; r < t.rows(); ++r) dequantize_row(t.type, t.data + r * rb, v.data() + r * t.ne[0], t.ne[0]);
  return v;
}

RandomLlamaSpec small_spec() {
  RandomLlamaSpec s;
  s.n_embd = 64;
  s.n_layer = 2;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.n_ff = 96;
  s.n_ctx = 128;
  s.n_vocab = 320;
  return s;
}

TEST(RandomModel, WritesStandardLlamaLayout) {
  const auto p = tmp_path("layout.gguf");
  RandomLlamaSpec s = small_spec();
  write_random_llama(p, s);
  auto f = GGUFFile::open(p);
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  EXPECT_EQ(f->get_int("llama.embedding_length"), 64);
  EXPECT_EQ(f->get_int("llama.block_count"), 2);
  EXPECT_EQ(f->get_int("llama.attention.head_count"), 4);
  EXPECT_EQ(f->get_int("llama.attention.head_count_kv"), 2);
  EXPECT_EQ(f->get_int("llama.feed_forward_length"), 96);
  EXPECT_EQ(f->get_int("llama.context_length"), 128);
  EXPECT_EQ(f->get_int("llama.rope.dimension_count"), 16);
  EXPECT_FLOAT_EQ(float(f->get_float("llama.rope.freq_base")), 10000.0f);
  EXPECT_FLOAT_EQ(float(f->get_float("llama.attention.layer_norm_rms_epsilon")), 1e-5f);
  EXPECT_EQ(f->get_int("general.file_type"), 0);
  struct Want { const char* name; std::vector<int64_t> ne; };
  const std::vector<Want> want = {
      {"token_embd.weight", {64, 320}}, {"blk.1.attn_norm.weight", {64}}, {"blk.1.attn_q.weight", {64, 64}},
      {"blk.1.attn_k.weight", {64, 32}}, {"blk.1.attn_v.weight", {64, 32}}, {"blk.1.attn_output.weight", {64, 64}},
      {"blk.1.ffn_norm.weight", {64}}, {"blk.1.ffn_gate.weight", {64, 96}}, {"blk.1.ffn_up.weight", {64, 96}},
      {"blk.1.ffn_down.weight", {96, 64}}, {"output_norm.weight", {64}}, {"output.weight", {64, 320}}};
  for (const auto& w : want) {
    const auto& t = f->tensor(w.name);
    EXPECT_EQ(t.ne, w.ne) << w.name;
    EXPECT_EQ(t.type, GGMLType::F32) << w.name;
  }
  EXPECT_EQ(f->tensors().size(), size_t(2 + 9 * 2 + 1));
  EXPECT_EQ(f->find_tensor("blk.0.attn_q.bias"), nullptr);
  EXPECT_EQ(random_llama_param_count(s, 320), int64_t(2 * 320 * 64 + 64 + 2 * (2 * 64 + 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 96)));

  // Scales: embeddings ~N(0,1), norm weights 1 ± 0.1, q ~N(0, 1.5/√64).
  auto stats = [&](const char* n) {
    auto v = values(f->tensor(n));
    double m = 0, q = 0;
    for (float x : v) m += x;
    m /= double(v.size());
    for (float x : v) q += (x - m) * (x - m);
    return std::pair<double, double>(m, std::sqrt(q / double(v.size())));
  };
  auto [em, es] = stats("token_embd.weight");
  EXPECT_NEAR(em, 0.0, 0.02);
  EXPECT_NEAR(es, 1.0, 0.02);
  auto [nm, ns] = stats("output_norm.weight");
  EXPECT_NEAR(nm, 1.0, 0.04);
  EXPECT_NEAR(ns, 0.1, 0.03);
  auto [qm, qs] = stats("blk.0.attn_q.weight");
  EXPECT_NEAR(qs, 1.5 / 8.0, 0.01);
  std::filesystem::remove(p);
}

TEST(RandomModel, DeterministicInSeedAndIndependentOfType) {
  RandomLlamaSpec s = small_spec();
  const auto a = tmp_path("a.gguf"), b = tmp_path("b.gguf"), c = tmp_path("c.gguf"), q = tmp_path("q.gguf");
  write_random_llama(a, s);
  write_random_llama(b, s);
  EXPECT_EQ(slurp(a), slurp(b));
  s.seed = 2;
  write_random_llama(c, s);
  EXPECT_NE(slurp(a), slurp(c));
  s.seed = 1;
  s.weight_type = GGMLType::Q8_0;
  write_random_llama(q, s);
  auto fa = GGUFFile::open(a), fq = GGUFFile::open(q);
  EXPECT_EQ(fq->get_int("general.file_type"), 7);
  EXPECT_EQ(fq->tensor("blk.0.ffn_down.weight").type, GGMLType::Q8_0);
  EXPECT_EQ(fq->tensor("blk.0.ffn_norm.weight").type, GGMLType::F32);
  // The Q8_0 file holds the F32 file's weights, quantized: within half a step of its block, plus
  // the f16 rounding of the scale (up to 127 · 2^-11 of a step).
  for (const char* n : {"blk.0.ffn_down.weight", "token_embd.weight", "output.weight"}) {
    auto x = values(fa->tensor(n)), y = values(fq->tensor(n));
    ASSERT_EQ(x.size(), y.size());
    for (size_t i0 = 0; i0 < x.size(); i0 += 32) {
      float amax = 0;
      for (size_t i = i0; i < i0 + 32; ++i) amax = std::max(amax, std::fabs(x[i]));
      for (size_t i = i0; i < i0 + 32; ++i) ASSERT_LE(std::fabs(x[i] - y[i]), amax / 127 * 0.57f) << n << " " << i;
    }
  }
  EXPECT_EQ(values(fa->tensor("blk.1.attn_norm.weight")), values(fq->tensor("blk.1.attn_norm.weight")));
  for (const auto& p : {a, b, c, q}) std::filesystem::remove(p);
}

TEST(RandomModel, Qwen2BiasTiedAndQ4) {
  RandomLlamaSpec s = small_spec();
  s.arch = "qwen2";
  s.qkv_bias = true;
  s.tied_output = true;
  s.weight_type = GGMLType::Q4_0;
  s.rope_freq_base = 1e6f;
  const auto p = tmp_path("qwen.gguf");
  write_random_llama(p, s);
  auto f = GGUFFile::open(p);
  EXPECT_EQ(f->get_string("general.architecture"), "qwen2");
  EXPECT_FLOAT_EQ(float(f->get_float("qwen2.rope.freq_base")), 1e6f);
  EXPECT_EQ(f->tensor("blk.0.attn_q.bias").ne, std::vector<int64_t>{64});
  EXPECT_EQ(f->tensor("blk.0.attn_k.bias").ne, std::vector<int64_t>{32});
  EXPECT_EQ(f->tensor("blk.0.attn_q.weight").type, GGMLType::Q4_0);
  EXPECT_EQ(f->find_tensor("output.weight"), nullptr);
  EXPECT_EQ(f->get_int("general.file_type"), 2);
  std::filesystem::remove(p);
}

// Each family's tensors and keys as llama.cpp's converter writes them.
TEST(RandomModel, FamilyLayouts) {
  const auto p = tmp_path("family.gguf");
  auto shapes = [&](const std::vector<std::pair<const char*, std::vector<int64_t>>>& want,
                    const std::vector<const char*>& absent) {
    auto f = GGUFFile::open(p);
    for (const auto& [name, ne] : want) {
      const GGUFTensorInfo* t = f->find_tensor(name);
      EXPECT_NE(t, nullptr) << name;
      if (t) {
        EXPECT_EQ(t->ne, ne) << name;
      }
    }
    for (const char* name : absent) EXPECT_EQ(f->find_tensor(name), nullptr) << name;
    return f;
  };
  RandomLlamaSpec s = small_spec();
  s.arch = "qwen3";
  s.head_dim = 32;  // q is 4 × 32 = 128 wide on a 64-wide stream
  write_random_llama(p, s);
  auto f = shapes({{"blk.1.attn_q.weight", {64, 128}}, {"blk.1.attn_k.weight", {64, 64}},
                   {"blk.1.attn_output.weight", {128, 64}}, {"blk.1.attn_q_norm.weight", {32}},
                   {"blk.1.attn_k_norm.weight", {32}}},
                  {"blk.0.attn_q.bias"});
  EXPECT_EQ(f->get_int("qwen3.attention.key_length"), 32);
  EXPECT_EQ(f->get_int("qwen3.attention.value_length"), 32);

  s = small_spec();
  s.arch = "gemma3";
  s.n_swa = 16;
  s.tied_output = true;
  write_random_llama(p, s);
  f = shapes({{"blk.0.attn_q_norm.weight", {16}}, {"blk.0.post_attention_norm.weight", {64}},
              {"blk.0.ffn_norm.weight", {64}}, {"blk.0.post_ffw_norm.weight", {64}}, {"blk.0.ffn_gate.weight", {64, 96}}},
             {"output.weight"});
  EXPECT_EQ(f->get_int("gemma3.attention.sliding_window"), 16);
  EXPECT_EQ(f->get_int("gemma3.attention.key_length"), 16);

  s = small_spec();
  s.arch = "phi3";
  s.n_rot = 12;
  s.longrope_orig_ctx = 32;
  write_random_llama(p, s);
  f = shapes({{"blk.0.attn_qkv.weight", {64, 64 + 2 * 32}}, {"blk.0.ffn_up.weight", {64, 2 * 96}},
              {"blk.0.ffn_down.weight", {96, 64}}, {"rope_factors_long.weight", {6}}, {"rope_factors_short.weight", {6}}},
             {"blk.0.attn_q.weight", "blk.0.ffn_gate.weight"});
  EXPECT_EQ(f->get_int("phi3.rope.dimension_count"), 12);
  EXPECT_EQ(f->get_int("phi3.rope.scaling.original_context_length"), 32);
  // The converter's attention factor: √(1 + ln(ctx/orig) / ln(orig)).
  EXPECT_NEAR(f->get_float("phi3.rope.scaling.attn_factor"), std::sqrt(1 + std::log(4.0) / std::log(32.0)), 1e-6);
  // The fused matrix holds the Q, K and V a separate-matrix file of the same seed would hold.
  const std::vector<float> qkv = values(f->tensor("blk.0.attn_qkv.weight"));
  RandomLlamaSpec sl = small_spec();
  const auto pl = tmp_path("family_llama.gguf");
  write_random_llama(pl, sl);
  auto fl = GGUFFile::open(pl);
  const std::vector<float> k = values(fl->tensor("blk.0.attn_k.weight"));
  EXPECT_EQ(std::vector<float>(qkv.begin() + 64 * 64, qkv.begin() + 64 * 64 + k.size()), k);

  // Llama 3.1's scaling as rope_freqs.weight: high frequencies 1, low ones divided by the factor.
  s = small_spec();
  s.llama3_factor = 8;
  s.llama3_orig_ctx = 64;  // wavelengths below 16 unchanged, above 64 divided by 8
  write_random_llama(p, s);
  f = shapes({{"rope_freqs.weight", {8}}}, {});
  const std::vector<float> rf = values(f->tensor("rope_freqs.weight"));
  EXPECT_EQ(rf.front(), 1.0f);  // wavelength 2π
  EXPECT_EQ(rf.back(), 8.0f);   // wavelength 2π · 10000^(14/16)
  for (size_t i = 1; i < rf.size(); ++i) EXPECT_GE(rf[i], rf[i - 1]);
  std::filesystem::remove(p);
  std::filesystem::remove(pl);
}

TEST(RandomModel, CopiesTokenizerFromVocabFile) {
  const char* shared = std::getenv("EDGEVLM_SHARED_DIR");
  const std::string vocab = std::string(shared ? shared : EDGEVLM_SOURCE_DIR "/../shared") +
                            "/testdata/tokenizer/ggml-vocab-gpt-2.gguf";
  if (!std::filesystem::exists(vocab)) GTEST_SKIP() << "no " << vocab;
  RandomLlamaSpec s = small_spec();
  s.n_layer = 1;
  s.vocab_from = vocab;
  const auto p = tmp_path("vocab.gguf");
  write_random_llama(p, s);
  auto f = GGUFFile::open(p), v = GGUFFile::open(vocab);
  EXPECT_EQ(f->get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f->get_strings("tokenizer.ggml.tokens"), v->get_strings("tokenizer.ggml.tokens"));
  EXPECT_EQ(f->get_strings("tokenizer.ggml.merges"), v->get_strings("tokenizer.ggml.merges"));
  EXPECT_EQ(f->get_int("llama.vocab_size"), 50257);
  EXPECT_EQ(f->tensor("token_embd.weight").ne, (std::vector<int64_t>{64, 50257}));
  std::filesystem::remove(p);
}

TEST(RandomModel, RejectsBadSpecs) {
  const auto p = tmp_path("bad.gguf");
  RandomLlamaSpec s = small_spec();
  s.n_head = 5;
  EXPECT_THROW(write_random_llama(p, s), Error);
  s = small_spec();
  s.n_head_kv = 3;
  EXPECT_THROW(write_random_llama(p, s), Error);
  s = small_spec();
  s.weight_type = GGMLType::Q4_0;
  s.n_ff = 100;  // not a multiple of the Q4_0 block
  EXPECT_THROW(write_random_llama(p, s), Error);
  s = small_spec();
  s.arch = "gpt2";
  EXPECT_THROW(write_random_llama(p, s), Error);
  s = small_spec();
  s.n_vocab = 0;
  EXPECT_THROW(write_random_llama(p, s), Error);
  s = small_spec();
  s.vocab_from = "/nonexistent/vocab.gguf";
  EXPECT_THROW(write_random_llama(p, s), Error);
  EXPECT_FALSE(std::filesystem::exists(p));
}

TEST(RandomModel, GenModelMainParsesFlags) {
  const auto p = tmp_path("cli.gguf");
  std::vector<std::string> args = {"gen-model", "--out", p, "--arch", "llama", "--embd", "64", "--layers", "1",
                                   "--heads", "4", "--kv-heads", "1", "--ff", "64", "--ctx", "64", "--type", "q4_0",
                                   "--seed", "7", "--vocab-size", "96", "--tied"};
  auto run = [](std::vector<std::string> a) {
    std::vector<char*> argv;
    for (auto& s : a) argv.push_back(s.data());
    return gen_model_main(int(argv.size()), argv.data());
  };
  ASSERT_EQ(run(args), 0);
  auto f = GGUFFile::open(p);
  EXPECT_EQ(f->get_int("llama.attention.head_count_kv"), 1);
  EXPECT_EQ(f->tensor("blk.0.ffn_up.weight").type, GGMLType::Q4_0);
  EXPECT_EQ(f->find_tensor("output.weight"), nullptr);
  EXPECT_EQ(run({"gen-model", "--out", p, "--embd", "x64"}), 1);
  EXPECT_EQ(run({"gen-model", "--out", p, "--bogus"}), 1);
  EXPECT_EQ(run({"gen-model", "--embd", "64"}), 1);  // no --out
  EXPECT_EQ(run({"gen-model", "--out", p, "--embd", "64", "--layers", "1", "--heads", "4", "--ff", "64", "--ctx",
                 "64", "--vocab-size", "96", "--type", "q5_k"}), 1);
  EXPECT_EQ(run({"gen-model", "--out", p, "--seed"}), 1);
  // The family flags.
  const std::vector<std::string> small = {"gen-model", "--out", p, "--embd", "64", "--layers", "3", "--heads", "4",
                                          "--ff", "64", "--ctx", "64", "--vocab-size", "96"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = small;
    a.insert(a.end(), extra.begin(), extra.end());
    return run(a);
  };
  ASSERT_EQ(with({"--arch", "lfm2", "--attn-layers", "0,2"}), 0);
  f = GGUFFile::open(p);
  EXPECT_EQ(f->get_ints("lfm2.attention.head_count_kv"), (std::vector<int64_t>{4, 0, 4}));
  EXPECT_EQ(f->get_int("lfm2.shortconv.l_cache"), 3);
  EXPECT_NE(f->find_tensor("blk.1.shortconv.in_proj.weight"), nullptr);
  ASSERT_EQ(with({"--arch", "gemma3", "--swa", "16", "--rope-linear", "8", "--head-dim", "32"}), 0);
  f = GGUFFile::open(p);
  EXPECT_EQ(f->get_string("gemma3.rope.scaling.type"), "linear");
  EXPECT_FLOAT_EQ(float(f->get_float("gemma3.rope.scaling.factor")), 8.0f);
  EXPECT_EQ(f->get_int("gemma3.attention.key_length"), 32);
  ASSERT_EQ(with({"--llama3-rope", "8,1,4,8192", "--rot", "8"}), 0);
  EXPECT_EQ(GGUFFile::open(p)->tensor("rope_freqs.weight").ne, std::vector<int64_t>{4});
  ASSERT_EQ(with({"--arch", "phi3", "--longrope", "32"}), 0);
  EXPECT_NE(GGUFFile::open(p)->find_tensor("rope_factors_long.weight"), nullptr);
  EXPECT_EQ(with({"--llama3-rope", "8,1,4"}), 1);                 // four values
  EXPECT_EQ(with({"--arch", "gemma3", "--attn-layers", "1"}), 1);  // lfm2 only
  EXPECT_EQ(with({"--arch", "lfm2"}), 1);                          // needs attention layers
  EXPECT_EQ(with({"--arch", "llama", "--longrope", "32"}), 1);      // phi3 only
  EXPECT_EQ(with({"--arch", "mamba"}), 1);
  std::filesystem::remove(p);
}

}  // namespace
}  // namespace edgevlm
