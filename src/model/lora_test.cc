// LoRA adapters: the adapted decoder against the same decoder with W + s·B·A written into its file
// (computed here in double), merged and on the fly, over architectures with separate, fused
// (phi3) and convolution (lfm2) matrices and over F32, F16 and Q8_0 bases; several adapters and
// scales; and every kind of bad adapter refused with an error naming the file and the tensor.
#include "model/lora.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <map>

#include "core/error.h"
#include "model/kv_cache.h"
#include "model/llm.h"
#include "model/random_model.h"

namespace edgevlm {
namespace {

std::string tmp_path(const std::string& name) {
  return ::testing::TempDir() + "edgevlm_lora_" + std::to_string(getpid()) + "_" + name;
}

// Removes its file when the test ends (the mapping of an open GGUFFile stays valid).
struct TmpFile {
  std::string path;
  explicit TmpFile(const std::string& name) : path(tmp_path(name)) {}
  ~TmpFile() { std::remove(path.c_str()); }
};

RandomLlamaSpec base_spec(const std::string& arch, GGMLType type) {
  RandomLlamaSpec s;
  s.arch = arch;
  s.n_embd = 64;
  s.n_layer = arch == "lfm2" ? 3 : 2;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.n_ff = 96;
  s.n_ctx = 64;
  s.n_vocab = 97;
  s.weight_type = type;
  s.seed = 5;
  if (arch == "qwen2") s.qkv_bias = true;
  if (arch == "lfm2") {
    s.attn_layers = {1};
    s.tied_output = true;
  }
  return s;
}

// Logits at the last of a few positions.
std::vector<float> last_logits(const LlmModel& m) {
  ThreadPool pool(2);
  const LlmConfig& c = m.config();
  const std::vector<int32_t> tokens = {3, 17, 42, 8, 91, 23, 5};
  std::vector<float> emb(tokens.size() * size_t(c.n_embd)), logits(size_t(c.n_vocab));
  m.embed_tokens(tokens.data(), int(tokens.size()), emb.data());
  KvCache cache(c, 32, KvType::F32);
  llm_forward(m, cache, emb.data(), int(tokens.size()), logits.data(), false, pool);
  return logits;
}

double rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return std::sqrt(s / double(v.size()));
}

// max |a − b| relative to the rms of b.
double rel_max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - double(b[i])));
  return d / rms(b);
}

// The base file with every adapted matrix replaced by W + Σ s·B·A (in double, stored as F32).
void write_baked(const GGUFFile& base, const std::vector<const LoraAdapter*>& adapters, const std::string& path) {
  std::map<std::string, std::vector<double>> delta;  // per target: n_out × n_in
  for (const LoraAdapter* ad : adapters)
    for (const LoraAdapter::Pair& p : ad->pairs()) {
      const std::vector<float> a = LoraAdapter::values(*p.a), b = LoraAdapter::values(*p.b);
      std::vector<double>& d = delta[p.target];
      d.resize(size_t(p.n_out * p.n_in));
      for (int64_t o = 0; o < p.n_out; ++o)
        for (int64_t k = 0; k < p.rank; ++k) {
          const double bk = double(p.scale) * b[size_t(o * p.rank + k)];
          for (int64_t i = 0; i < p.n_in; ++i) d[size_t(o * p.n_in + i)] += bk * a[size_t(k * p.n_in + i)];
        }
    }
  GGUFWriter w;
  for (const auto& [k, v] : base.metadata()) w.set(k, v);
  for (const GGUFTensorInfo& t : base.tensors()) {
    auto it = delta.find(t.name);
    if (it == delta.end()) {
      w.add_tensor(t.name, t.type, t.ne, t.data, t.nbytes);
      continue;
    }
    const int64_t n_in = t.ne[0], n_out = t.ne[1];
    std::vector<float> m(size_t(n_in * n_out));
    for (int64_t o = 0; o < n_out; ++o) {
      dequantize_row(t.type, t.data + size_t(o) * row_bytes(t.type, n_in), m.data() + o * n_in, n_in);
      for (int64_t i = 0; i < n_in; ++i) {
        const size_t j = size_t(o * n_in + i);
        m[j] = float(m[j] + it->second[j]);
      }
    }
    w.add_tensor_f32(t.name, GGMLType::F32, t.ne, m.data());
  }
  w.write(path);
}

TEST(Lora, ParsesFileAndScale) {
  LoraAdapterSpec s = parse_lora_spec("a.gguf");
  EXPECT_EQ(s.path, "a.gguf");
  EXPECT_EQ(s.scale, 1.0f);
  s = parse_lora_spec("dir/a.gguf:0.5");
  EXPECT_EQ(s.path, "dir/a.gguf");
  EXPECT_EQ(s.scale, 0.5f);
  s = parse_lora_spec("a.gguf:-2");
  EXPECT_EQ(s.scale, -2.0f);
  s = parse_lora_spec("x:y/a.gguf");  // not a number after the colon: all of it is the path
  EXPECT_EQ(s.path, "x:y/a.gguf");
  EXPECT_EQ(s.scale, 1.0f);
  EXPECT_THROW(parse_lora_spec(":0.5"), Error);
  EXPECT_THROW(parse_lora_spec(""), Error);
  EXPECT_THROW(parse_lora_spec("a.gguf:nan"), Error);
  EXPECT_THROW(parse_lora_spec("a.gguf:inf"), Error);
  EXPECT_THROW(parse_lora_spec("a.gguf:1e300"), Error);
}

// The adapted model (merged or on the fly) equals the model whose file holds W + s·B·A; and the
// adapter changes the logits by far more than that difference.
void check_against_baked(const std::string& arch, GGMLType base_type, GGMLType lora_type, bool expect_merged) {
  SCOPED_TRACE(arch + " base " + type_name(base_type) + " adapter " + type_name(lora_type));
  TmpFile base_path(arch + "_base.gguf"), lora_path(arch + "_lora.gguf"), lora2_path(arch + "_lora2.gguf"),
      baked_path(arch + "_baked.gguf");
  write_random_llama(base_path.path, base_spec(arch, base_type));
  RandomLoraSpec ls;
  ls.base = base_path.path;
  ls.rank = lora_type == GGMLType::Q8_0 ? 32 : 4;
  ls.alpha = 8;
  ls.type = lora_type;
  ls.seed = 9;
  const int n_targets = write_random_lora(lora_path.path, ls);
  // A second adapter on part of the matrices, another rank and no alpha (s = its scale).
  ls.rank = lora_type == GGMLType::Q8_0 ? 32 : 3;
  ls.alpha = 0;
  ls.seed = 10;
  ls.strength = 0.2f;
  ls.targets = {arch == "phi3" ? "attn_qkv" : "attn_v", "ffn_down"};
  write_random_lora(lora2_path.path, ls);

  auto base = GGUFFile::open(base_path.path);
  auto ad1 = LoraAdapter::open(lora_path.path, 0.7f);
  auto ad2 = LoraAdapter::open(lora2_path.path, -1.5f);
  EXPECT_EQ(ad1->pairs().size(), size_t(n_targets));
  EXPECT_FLOAT_EQ(ad1->pairs()[0].scale, 0.7f * 8 / float(ad1->pairs()[0].rank));
  EXPECT_FLOAT_EQ(ad2->pairs()[0].scale, -1.5f);
  const std::vector<const LoraAdapter*> ads = {ad1.get(), ad2.get()};
  write_baked(*base, ads, baked_path.path);
  auto baked = GGUFFile::open(baked_path.path);

  const std::vector<float> plain = last_logits(*LlmModel::load(*base));
  const std::vector<float> want = last_logits(*LlmModel::load(*baked));
  ThreadPool pool(2);
  auto autom = LlmModel::load(*base, &pool, ads, LoraMode::Auto);
  auto fly = LlmModel::load(*base, nullptr, ads, LoraMode::OnTheFly);
  const int n_matrices = autom->lora()->n_merged() + autom->lora()->n_on_the_fly();
  EXPECT_GE(n_matrices, n_targets);  // fused tensors count once per view
  EXPECT_EQ(autom->lora()->n_merged() > 0, expect_merged);
  EXPECT_EQ(autom->lora()->n_on_the_fly() > 0, !expect_merged);
  EXPECT_EQ(fly->lora()->n_merged(), 0);
  EXPECT_EQ(fly->lora()->n_on_the_fly(), n_matrices);

  // F32 and F16 bases multiply in F32 like the baked F32 file: rounding only. A Q8_0 or Q4_0 base
  // quantizes the activations to 8 bits for W·x, and the baked file is F32: a few percent.
  const double tol = base_type == GGMLType::F32 || base_type == GGMLType::F16 ? 1e-4 : 0.08;
  EXPECT_LT(rel_max_diff(last_logits(*autom), want), tol);
  EXPECT_LT(rel_max_diff(last_logits(*fly), want), tol);
  EXPECT_GT(rel_max_diff(plain, want), 0.2) << "the adapter hardly changes the logits: the test could not fail";
}

TEST(Lora, MatchesTheBakedModelOnEveryArchitecture) {
  for (const std::string arch : {"llama", "qwen2", "phi3", "lfm2", "gemma3", "qwen3"})
    check_against_baked(arch, GGMLType::F32, GGMLType::F32, true);
}

TEST(Lora, OnTheFlyOnFloat16AndQuantizedBases) {
  check_against_baked("llama", GGMLType::F16, GGMLType::F32, false);
  check_against_baked("llama", GGMLType::Q8_0, GGMLType::F32, false);
  check_against_baked("phi3", GGMLType::Q4_0, GGMLType::F16, false);
}

TEST(Lora, AdapterTypes) {
  check_against_baked("llama", GGMLType::F32, GGMLType::F16, true);
  check_against_baked("llama", GGMLType::F32, GGMLType::BF16, true);
  check_against_baked("llama", GGMLType::F32, GGMLType::Q8_0, true);
}

TEST(Lora, ZeroScaleLeavesTheModelAsIs) {
  TmpFile base_path("zero_base.gguf"), lora_path("zero_lora.gguf");
  write_random_llama(base_path.path, base_spec("llama", GGMLType::F32));
  RandomLoraSpec ls;
  ls.base = base_path.path;
  write_random_lora(lora_path.path, ls);
  auto base = GGUFFile::open(base_path.path);
  auto ad = LoraAdapter::open(lora_path.path, 0.0f);
  auto m = LlmModel::load(*base, nullptr, {ad.get()});
  EXPECT_EQ(m->lora()->n_merged() + m->lora()->n_on_the_fly(), 0);
  EXPECT_EQ(last_logits(*m), last_logits(*LlmModel::load(*base)));
}

// ---- hostile adapters --------------------------------------------------------------------------

struct BadCase {
  const char* what;
  std::function<void(GGUFWriter&, int64_t n_embd)> build;  // writes the adapter's keys and tensors
  const char* error;                                       // a part of the message
};

void good_keys(GGUFWriter& w) {
  w.set_string("general.architecture", "llama");
  w.set_string("general.type", "adapter");
  w.set_string("adapter.type", "lora");
  w.set_f32("adapter.lora.alpha", 8);
}

void pair(GGUFWriter& w, const std::string& target, int64_t n_in, int64_t r, int64_t n_out,
          GGMLType type = GGMLType::F32, float fill = 0.01f) {
  std::vector<float> a(size_t(n_in * r), fill), b(size_t(r * n_out), fill);
  w.add_tensor_f32(target + ".lora_a", type, {n_in, r}, a.data());
  w.add_tensor_f32(target + ".lora_b", type, {r, n_out}, b.data());
}

TEST(Lora, RefusesBadAdaptersNamingFileAndTensor) {
  TmpFile base_path("hostile_base.gguf");
  write_random_llama(base_path.path, base_spec("llama", GGMLType::F32));
  auto base = GGUFFile::open(base_path.path);
  const int64_t E = 64, KV = 32;
  const std::vector<BadCase> cases = {
      {"a model, not an adapter",
       [](GGUFWriter& w, int64_t e) {
         good_keys(w);
         w.set_string("general.type", "model");
         pair(w, "blk.0.attn_q.weight", e, 4, e);
       },
       "general.type is 'model', not 'adapter'"},
      {"no general.type",
       [](GGUFWriter& w, int64_t e) {
         w.set_string("general.architecture", "llama");
         w.set_string("adapter.type", "lora");
         pair(w, "blk.0.attn_q.weight", e, 4, e);
       },
       "general.type is missing"},
      {"a control vector",
       [](GGUFWriter& w, int64_t e) {
         good_keys(w);
         w.set_string("adapter.type", "control_vector");
         pair(w, "blk.0.attn_q.weight", e, 4, e);
       },
       "adapter.type is 'control_vector', not 'lora'"},
      {"alpha as a string",
       [](GGUFWriter& w, int64_t e) {
         good_keys(w);
         w.set_string("adapter.lora.alpha", "16");
         pair(w, "blk.0.attn_q.weight", e, 4, e);
       },
       "'adapter.lora.alpha' is a string, not a number"},
      {"another architecture",
       [](GGUFWriter& w, int64_t e) {
         good_keys(w);
         w.set_string("general.architecture", "qwen2");
         pair(w, "blk.0.attn_q.weight", e, 4, e);
       },
       "the adapter is for architecture 'qwen2' but the model"},
      {"a target the model lacks",
       [](GGUFWriter& w, int64_t e) {
         good_keys(w);
         pair(w, "blk.7.attn_q.weight", e, 4, e);
       },
       "targets 'blk.7.attn_q.weight', which the model"},
      {"a norm as target",
       [](GGUFWriter& w, int64_t e) {
         good_keys(w);
         pair(w, "blk.0.attn_norm.weight", e, 4, 1);
       },
       "targets 'blk.0.attn_norm.weight', which is not a matrix the model multiplies"},
      {"the embedding table as target",
       [](GGUFWriter& w, int64_t e) {
         good_keys(w);
         pair(w, "token_embd.weight", 4, e, 97);
       },
       "targets 'token_embd.weight', which is not a matrix"},
      {"lora_a of another width",
       [](GGUFWriter& w, int64_t e) {
         good_keys(w);
         pair(w, "blk.0.attn_q.weight", e + 32, 4, e);
       },
       "'blk.0.attn_q.weight' is [96, 64] after its LoRA product"},
      {"lora_b of another height",
       [KV](GGUFWriter& w, int64_t e) {
         good_keys(w);
         pair(w, "blk.1.attn_k.weight", e, 4, KV * 2);
       },
       "'blk.1.attn_k.weight' is [64, 64] after its LoRA product (lora_a [64, 4], lora_b [4, 64]) but the model's "
       "'blk.1.attn_k.weight' is [64, 32]"},
      {"ranks that disagree",
       [](GGUFWriter& w, int64_t e) {
         good_keys(w);
         std::vector<float> a(size_t(e * 4), 0.1f), b(size_t(5 * e), 0.1f);
         w.add_tensor_f32("blk.0.attn_q.weight.lora_a", GGMLType::F32, {e, 4}, a.data());
         w.add_tensor_f32("blk.0.attn_q.weight.lora_b", GGMLType::F32, {5, e}, b.data());
       },
       "'blk.0.attn_q.weight.lora_a' has rank 4 (shape [64, 4]) but 'blk.0.attn_q.weight.lora_b' has 5 columns"},
      {"lora_a transposed",
       [](GGUFWriter& w, int64_t e) {
         good_keys(w);
         std::vector<float> a(size_t(e * 4), 0.1f), b(size_t(4 * e), 0.1f);
         w.add_tensor_f32("blk.0.attn_q.weight.lora_a", GGMLType::F32, {4, e}, a.data());
         w.add_tensor_f32("blk.0.attn_q.weight.lora_b", GGMLType::F32, {4, e}, b.data());
       },
       "'blk.0.attn_q.weight.lora_a' has rank 64 (shape [4, 64]) but 'blk.0.attn_q.weight.lora_b' has 4 columns"},
      {"lora_a without lora_b",
       [](GGUFWriter& w, int64_t e) {
         good_keys(w);
         std::vector<float> a(size_t(e * 4), 0.1f);
         w.add_tensor_f32("blk.0.attn_q.weight.lora_a", GGMLType::F32, {e, 4}, a.data());
       },
       "'blk.0.attn_q.weight.lora_a' has no matching 'blk.0.attn_q.weight.lora_b'"},
      {"a stray tensor",
       [](GGUFWriter& w, int64_t e) {
         good_keys(w);
         pair(w, "blk.0.attn_q.weight", e, 4, e);
         std::vector<float> x(size_t(e), 0.1f);
         w.add_tensor_f32("blk.0.attn_q.weight", GGMLType::F32, {e}, x.data());
       },
       "tensor 'blk.0.attn_q.weight' is neither a .lora_a nor a .lora_b tensor"},
      {"rank 0",
       [](GGUFWriter& w, int64_t e) {
         good_keys(w);
         pair(w, "blk.0.attn_q.weight", e, 0, e);
       },
       "rank 0"},
      {"no pairs at all", [](GGUFWriter& w, int64_t) { good_keys(w); }, "the adapter has no .lora_a/.lora_b tensors"},
      {"a 1-D lora_a",
       [](GGUFWriter& w, int64_t e) {
         good_keys(w);
         std::vector<float> a(size_t(e), 0.1f), b(size_t(e), 0.1f);
         w.add_tensor_f32("blk.0.attn_q.weight.lora_a", GGMLType::F32, {e}, a.data());
         w.add_tensor_f32("blk.0.attn_q.weight.lora_b", GGMLType::F32, {1, e}, b.data());
       },
       "LoRA tensor 'blk.0.attn_q.weight.lora_a' has shape [64], expected 2 dimensions"},
      {"a Q4_0 adapter",
       [](GGUFWriter& w, int64_t e) {
         good_keys(w);
         pair(w, "blk.0.attn_q.weight", e, 32, e, GGMLType::Q4_0);
       },
       "has type q4_0; adapters are f32, f16, bf16 or q8_0"},
      {"a NaN",
       [](GGUFWriter& w, int64_t e) {
         good_keys(w);
         pair(w, "blk.0.attn_q.weight", e, 4, e, GGMLType::F32, std::nanf(""));
       },
       "LoRA tensor 'blk.0.attn_q.weight.lora_a' has a non-finite value"},
      {"an infinity in F16",
       [](GGUFWriter& w, int64_t e) {
         good_keys(w);
         std::vector<float> a(size_t(e * 4), 0.1f), b(size_t(4 * e), 0.1f);
         b[7] = 1e6f;  // beyond F16's range: stored as +inf
         w.add_tensor_f32("blk.0.attn_q.weight.lora_a", GGMLType::F16, {e, 4}, a.data());
         w.add_tensor_f32("blk.0.attn_q.weight.lora_b", GGMLType::F16, {4, e}, b.data());
       },
       "LoRA tensor 'blk.0.attn_q.weight.lora_b' has a non-finite value (inf) at element 7"},
  };
  (void)E;
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.what);
    GGUFWriter w;
    c.build(w, E);
    const std::vector<uint8_t> bytes = w.serialize();
    std::string msg;
    try {
      auto ad = LoraAdapter::from_file(GGUFFile::from_memory(bytes.data(), bytes.size(), "bad-adapter.gguf"));
      LlmModel::load(*base, nullptr, {ad.get()});
    } catch (const Error& e) {
      msg = e.what();
    }
    EXPECT_NE(msg.find(c.error), std::string::npos) << "message: " << msg;
    EXPECT_NE(msg.find("bad-adapter.gguf"), std::string::npos) << "message: " << msg;
  }
  // A file that is not a GGUF at all, and a missing file.
  const std::vector<uint8_t> junk(100, 7);
  EXPECT_THROW(LoraAdapter::from_file(GGUFFile::from_memory(junk.data(), junk.size(), "junk.gguf")), Error);
  EXPECT_THROW(LoraAdapter::open(tmp_path("does-not-exist.gguf")), Error);
}

TEST(Lora, GenLoraMainWritesAnAdapter) {
  TmpFile base_path("gen_base.gguf"), lora_path("gen_lora.gguf");
  write_random_llama(base_path.path, base_spec("llama", GGMLType::F32));
  std::vector<std::string> args = {"gen-lora", "--base", base_path.path, "--out", lora_path.path, "--rank", "2",
                                   "--alpha", "4", "--targets", "attn_q,output", "--type", "f16", "--seed", "3"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  ASSERT_EQ(gen_lora_main(int(argv.size()), argv.data()), 0);
  auto ad = LoraAdapter::open(lora_path.path);
  ASSERT_EQ(ad->pairs().size(), 3u);  // attn_q of two layers, output
  EXPECT_EQ(ad->pairs()[0].target, "blk.0.attn_q.weight");
  EXPECT_EQ(ad->pairs()[2].target, "output.weight");
  EXPECT_EQ(ad->pairs()[0].a->type, GGMLType::F16);
  EXPECT_EQ(ad->pairs()[0].rank, 2);
  EXPECT_FLOAT_EQ(ad->alpha(), 4.0f);
  args[10] = "attn_z";
  argv.clear();
  for (auto& a : args) argv.push_back(a.data());
  EXPECT_EQ(gen_lora_main(int(argv.size()), argv.data()), 1);
}

}  // namespace
}  // namespace edgevlm
