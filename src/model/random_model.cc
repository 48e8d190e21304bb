#include "model/random_model.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "vision/family_lfm2.h"
#include "vision/mmproj.h"

namespace edgevlm {

namespace {

// A generator of our own (not std::normal_distribution, whose output differs between standard
// libraries) so that a seed means the same file everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (double(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }  // (0, 1)
  float normal() {  // Box–Muller, both values used
    if (have_spare_) {
      have_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(uniform())), t = 6.283185307179586 * uniform();
    spare_ = float(r * std::sin(t));
    have_spare_ = true;
    return float(r * std::cos(t));
  }

 private:
  uint64_t s_;
  float spare_ = 0;
  bool have_spare_ = false;
};

uint64_t name_hash(const std::string& s) {  // FNV-1a
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

struct Builder {
  const RandomLlamaSpec& spec;
  GGUFWriter& w;

  // values = mean + sd·N(0,1), from a stream that depends only on the seed and the name.
  std::vector<float> draw(const std::string& name, int64_t n, float mean, float sd) const {
    Rng rng(spec.seed * 0x9E3779B97F4A7C15ull ^ name_hash(name));
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = mean + sd * rng.normal();
    return v;
  }
  void matrix(const std::string& name, int64_t cols, int64_t rows, float sd) const {
    auto v = draw(name, cols * rows, 0.0f, sd);
    w.add_tensor_f32(name, spec.weight_type, {cols, rows}, v.data());
  }
  // Several matrices of n_in columns drawn as if separate (name, rows, sd), stored as one.
  struct Part {
    std::string name;
    int64_t rows;
    float sd;
  };
  void stacked(const std::string& name, int64_t cols, const std::vector<Part>& parts) const {
    std::vector<float> all;
    int64_t rows = 0;
    for (const Part& p : parts) {
      auto v = draw(p.name, cols * p.rows, 0.0f, p.sd);
      all.insert(all.end(), v.begin(), v.end());
      rows += p.rows;
    }
    w.add_tensor_f32(name, spec.weight_type, {cols, rows}, all.data());
  }
  void vec(const std::string& name, int64_t n, float mean, float sd) const {
    auto v = draw(name, n, mean, sd);
    w.add_tensor_f32(name, GGMLType::F32, {n}, v.data());
  }
};

int file_type_of(GGMLType t) {  // llama.cpp's LLAMA_FTYPE_* ("mostly" type)
  switch (t) {
    case GGMLType::F32: return 0;
    case GGMLType::F16: return 1;
    case GGMLType::Q4_0: return 2;
    case GGMLType::Q8_0: return 7;
    case GGMLType::BF16: return 32;
    default: return -1;
  }
}

int head_dim_of(const RandomLlamaSpec& s) { return s.head_dim > 0 ? s.head_dim : s.n_embd / s.n_head; }
int n_rot_of(const RandomLlamaSpec& s) { return s.n_rot > 0 ? s.n_rot : head_dim_of(s); }

void validate(const RandomLlamaSpec& s) {
  EV_CHECK(s.arch == "llama" || s.arch == "qwen2" || s.arch == "qwen2vl" || s.arch == "qwen3" || s.arch == "gemma3" ||
               s.arch == "phi3" || s.arch == "lfm2",
           "gen-model: architecture '%s' is not one of llama, qwen2, qwen2vl, qwen3, gemma3, phi3, lfm2", s.arch.c_str());
  EV_CHECK((s.arch == "qwen2vl") ==
               (s.rope_sections[0] + s.rope_sections[1] + s.rope_sections[2] > 0),
           "gen-model: qwen2vl, and only it, takes M-RoPE sections");
  EV_CHECK(s.n_embd > 0 && s.n_layer > 0 && s.n_head > 0 && s.n_head_kv > 0 && s.n_ff > 0 && s.n_ctx > 0,
           "gen-model: embd (%d), layers (%d), heads (%d), kv-heads (%d), ff (%d) and ctx (%d) must all be positive",
           s.n_embd, s.n_layer, s.n_head, s.n_head_kv, s.n_ff, s.n_ctx);
  EV_CHECK(s.head_dim > 0 || s.n_embd % s.n_head == 0, "gen-model: embd %d is not a multiple of heads %d",
           s.n_embd, s.n_head);
  EV_CHECK(s.n_head % s.n_head_kv == 0, "gen-model: heads %d is not a multiple of kv-heads %d", s.n_head,
           s.n_head_kv);
  const int hd = head_dim_of(s), rot = n_rot_of(s);
  EV_CHECK(hd % 2 == 0 && rot % 2 == 0 && rot <= hd, "gen-model: head size %d and rotated dimensions %d must be "
           "even, the rotated ones at most the head size", hd, rot);
  EV_CHECK(file_type_of(s.weight_type) >= 0, "gen-model: weight type %s is not one of f32, f16, bf16, q8_0, q4_0",
           type_name(s.weight_type).c_str());
  const size_t blk = type_block_elems(s.weight_type);
  EV_CHECK(s.n_embd % int(blk) == 0 && s.n_ff % int(blk) == 0 && (s.n_head * hd) % int(blk) == 0,
           "gen-model: embd %d, ff %d and heads × head size %d must be multiples of %zu for %s", s.n_embd, s.n_ff,
           s.n_head * hd, blk, type_name(s.weight_type).c_str());
  EV_CHECK(s.rope_freq_base > 0, "gen-model: rope base must be positive");
  EV_CHECK(s.rms_eps > 0, "gen-model: eps must be positive");
  EV_CHECK(s.llama3_factor == 0 || (s.arch == "llama" && s.llama3_factor >= 1 && s.llama3_high > s.llama3_low &&
                                    s.llama3_low > 0 && s.llama3_orig_ctx > 0),
           "gen-model: --llama3-rope needs arch llama, factor >= 1, 0 < low < high and a positive context");
  EV_CHECK(s.longrope_orig_ctx == 0 || (s.arch == "phi3" && s.longrope_orig_ctx > 0 && s.longrope_orig_ctx < s.n_ctx),
           "gen-model: --longrope needs arch phi3 and an original context below --ctx");
  EV_CHECK(s.n_swa == 0 || (s.arch == "gemma3" && s.n_swa > 0), "gen-model: --swa needs arch gemma3");
  EV_CHECK(s.attn_layers.empty() || s.arch == "lfm2", "gen-model: --attn-layers needs arch lfm2");
  EV_CHECK(s.rope_linear_factor == 0 || s.rope_linear_factor >= 1, "gen-model: --rope-linear must be at least 1");
  if (s.arch == "lfm2") {
    EV_CHECK(!s.attn_layers.empty(), "gen-model: lfm2 needs --attn-layers (at least one attention layer)");
    for (int l : s.attn_layers)
      EV_CHECK(l >= 0 && l < s.n_layer, "gen-model: attention layer %d is outside [0, %d)", l, s.n_layer);
    EV_CHECK(s.conv_kernel >= 2, "gen-model: the convolution needs at least 2 taps");
    EV_CHECK(s.head_dim == 0, "gen-model: lfm2's head size is embd / heads");
  }
}

// Llama 3's rope_freqs.weight as convert_hf_to_gguf.py computes it from the rope_scaling config:
// high frequencies unchanged, low ones divided by `factor`, a smooth ramp between.
std::vector<float> llama3_rope_factors(const RandomLlamaSpec& s) {
  const int dim = n_rot_of(s);
  const double low_wavelen = s.llama3_orig_ctx / s.llama3_low, high_wavelen = s.llama3_orig_ctx / s.llama3_high;
  std::vector<float> f;
  for (int i = 0; i < dim; i += 2) {
    const double freq = 1.0 / std::pow(double(s.rope_freq_base), double(i) / dim);
    const double wavelen = 2 * M_PI / freq;
    if (wavelen < high_wavelen) {
      f.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      f.push_back(s.llama3_factor);
    } else {
      const double smooth = (s.llama3_orig_ctx / wavelen - s.llama3_low) / (s.llama3_high - s.llama3_low);
      f.push_back(float(1.0 / ((1 - smooth) / s.llama3_factor + smooth)));
    }
  }
  return f;
}

}  // namespace

int64_t random_llama_param_count(const RandomLlamaSpec& s, int n_vocab) {
  const int64_t e = s.n_embd, hd = head_dim_of(s), q = int64_t(s.n_head) * hd, kv = int64_t(s.n_head_kv) * hd,
                ff = s.n_ff;
  int64_t per_layer = 2 * e + e * q /*q*/ + 2 * e * kv /*k,v*/ + q * e /*o*/ + 3 * e * ff;
  if (s.qkv_bias) per_layer += q + 2 * kv;
  if (s.arch == "qwen3" || s.arch == "gemma3") per_layer += 2 * hd;  // q/k norms
  if (s.arch == "gemma3") per_layer += 2 * e;                          // post-norms
  int64_t total = int64_t(n_vocab) * e * (s.tied_output ? 1 : 2) + e + s.n_layer * per_layer;
  if (s.arch == "lfm2") {  // convolution layers: in/out projections and taps instead of attention
    const int64_t n_conv = s.n_layer - int64_t(s.attn_layers.size());
    total += n_conv * (3 * e * e + e * e + e * s.conv_kernel - (e * q + 2 * e * kv + q * e + 2 * hd));
  }
  return total;
}

void write_random_llama(const std::string& path, const RandomLlamaSpec& spec) {
  validate(spec);
  GGUFWriter w;
  const std::string& a = spec.arch;
  w.set_string("general.architecture", a);
  w.set_string("general.name", "edgevlm-random-" + a);
  w.set_u32("general.file_type", uint32_t(file_type_of(spec.weight_type)));
  if (spec.weight_type == GGMLType::Q8_0 || spec.weight_type == GGMLType::Q4_0)
    w.set_u32("general.quantization_version", 2);
  const int head_dim = head_dim_of(spec), n_rot = n_rot_of(spec);
  const bool gemma = a == "gemma3", phi = a == "phi3";
  const bool lfm2 = a == "lfm2";
  const bool qk_norm = a == "qwen3" || gemma || lfm2;
  std::vector<uint8_t> is_attn(size_t(spec.n_layer), uint8_t(!lfm2));
  for (int l : spec.attn_layers) is_attn[size_t(l)] = 1;
  w.set_u32(a + ".context_length", uint32_t(spec.n_ctx));
  w.set_u32(a + ".embedding_length", uint32_t(spec.n_embd));
  w.set_u32(a + ".block_count", uint32_t(spec.n_layer));
  w.set_u32(a + ".feed_forward_length", uint32_t(spec.n_ff));
  w.set_u32(a + ".attention.head_count", uint32_t(spec.n_head));
  if (lfm2) {  // one entry per layer, 0 for the convolution layers (as the converter writes it)
    std::vector<int32_t> kv(size_t(spec.n_layer));
    for (int l = 0; l < spec.n_layer; ++l) kv[size_t(l)] = is_attn[size_t(l)] ? spec.n_head_kv : 0;
    w.set(a + ".attention.head_count_kv", GGUFValue::from_i32s(kv));
    w.set_u32(a + ".shortconv.l_cache", uint32_t(spec.conv_kernel));
  } else {
    w.set_u32(a + ".attention.head_count_kv", uint32_t(spec.n_head_kv));
  }
  if (spec.head_dim > 0 || gemma) {  // the converters write the head size when the config names it
    w.set_u32(a + ".attention.key_length", uint32_t(head_dim));
    w.set_u32(a + ".attention.value_length", uint32_t(head_dim));
  }
  if (!gemma && !lfm2) w.set_u32(a + ".rope.dimension_count", uint32_t(n_rot));
  w.set_f32(a + ".rope.freq_base", spec.rope_freq_base);
  if (spec.arch == "qwen2vl")
    w.set(a + ".rope.dimension_sections", GGUFValue::from_i32s({spec.rope_sections[0], spec.rope_sections[1],
                                                                 spec.rope_sections[2], 0}));
  w.set_f32(a + ".attention.layer_norm_rms_epsilon", spec.rms_eps);
  if (spec.n_swa > 0) w.set_u32(a + ".attention.sliding_window", uint32_t(spec.n_swa));
  if (spec.rope_linear_factor > 0) {
    w.set_string(a + ".rope.scaling.type", "linear");
    w.set_f32(a + ".rope.scaling.factor", spec.rope_linear_factor);
  }
  if (spec.longrope_orig_ctx > 0) {
    w.set_u32(a + ".rope.scaling.original_context_length", uint32_t(spec.longrope_orig_ctx));
    const double scale = double(spec.n_ctx) / spec.longrope_orig_ctx;  // the converter's attn_factor
    w.set_f32(a + ".rope.scaling.attn_factor",
              float(std::sqrt(1 + std::log(scale) / std::log(double(spec.longrope_orig_ctx)))));
  }

  int n_vocab = spec.n_vocab;
  if (!spec.vocab_from.empty()) {
    auto vf = GGUFFile::open(spec.vocab_from);
    bool any = false;
    for (const auto& [key, value] : vf->metadata()) {
      if (key.rfind("tokenizer.", 0) == 0) {
        w.set(key, value);
        any = true;
      }
    }
    EV_CHECK(any, "gen-model: %s has no tokenizer.* keys to copy", spec.vocab_from.c_str());
    std::vector<std::string> tokens = vf->get_strings("tokenizer.ggml.tokens");
    if (!spec.added_tokens.empty()) {
      std::vector<int32_t> types;
      if (vf->has("tokenizer.ggml.token_type"))
        for (int64_t t : vf->get_ints("tokenizer.ggml.token_type")) types.push_back(int32_t(t));
      types.resize(tokens.size(), 1);  // NORMAL where the file has no types
      for (const std::string& t : spec.added_tokens) {
        tokens.push_back(t);
        types.push_back(3);  // CONTROL
      }
      w.set("tokenizer.ggml.tokens", GGUFValue::from_strings(tokens));
      w.set("tokenizer.ggml.token_type", GGUFValue::from_i32s(types));
    }
    auto id_of = [&](const std::string& name) {
      for (size_t i = tokens.size(); i-- > 0;)
        if (tokens[i] == name) return uint32_t(i);
      fail("gen-model: token '%s' is not in the vocabulary", name.c_str());
    };
    if (!spec.bos_token.empty()) w.set_u32("tokenizer.ggml.bos_token_id", id_of(spec.bos_token));
    if (!spec.eos_token.empty()) w.set_u32("tokenizer.ggml.eos_token_id", id_of(spec.eos_token));
    if (spec.add_bos >= 0) w.set("tokenizer.ggml.add_bos_token", GGUFValue::from_bool(spec.add_bos == 1));
    n_vocab = int(tokens.size());
  }
  EV_CHECK(n_vocab > 0, "gen-model: no vocabulary: give a vocab GGUF or a vocab size");
  w.set_u32(a + ".vocab_size", uint32_t(n_vocab));

  // Scales relative to fan-in keep every layer's contribution to the residual stream of the same
  // order as the unit-variance token embeddings, whatever the width: activations stay O(1), the
  // attention is far from uniform (q·k/√d has a spread of ~2), and no single part dominates, so a
  // wrong RoPE, mask, norm or FFN shows in the logits. Norm weights are 1 ± 0.1 so a missing or
  // misapplied norm weight shows too (Gemma's converter stores its norms as 1 + w, so the same
  // holds there). Gemma multiplies embeddings by √n_embd: its table is drawn 1/√n_embd smaller.
  Builder b{spec, w};
  const int64_t e = spec.n_embd, q_dim = int64_t(spec.n_head) * head_dim, kvd = int64_t(spec.n_head_kv) * head_dim;
  const float se = 1.0f / std::sqrt(float(e));
  b.matrix("token_embd.weight", e, n_vocab, gemma ? se : 1.0f);
  for (int l = 0; l < spec.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    b.vec(p + "attn_norm.weight", e, 1.0f, 0.1f);
    b.vec(p + "ffn_norm.weight", e, 1.0f, 0.1f);
    if (phi) {  // one matrix: the gate rows, then the up rows (Phi-3's gate_up_proj)
      b.stacked(p + "ffn_up.weight", e, {{p + "ffn_gate.weight", spec.n_ff, se}, {p + "ffn_up.weight", spec.n_ff, se}});
    } else {
      b.matrix(p + "ffn_gate.weight", e, spec.n_ff, se);
      b.matrix(p + "ffn_up.weight", e, spec.n_ff, se);
    }
    b.matrix(p + "ffn_down.weight", spec.n_ff, e, 0.6f / std::sqrt(float(spec.n_ff)));
    if (gemma) b.vec(p + "post_ffw_norm.weight", e, 1.0f, 0.1f);
    if (!is_attn[size_t(l)]) {  // LFM2 short convolution: B, C, x projections, taps, output
      b.matrix(p + "shortconv.in_proj.weight", e, 3 * e, 1.5f * se);
      b.matrix(p + "shortconv.out_proj.weight", e, e, 0.6f * se);
      auto taps = b.draw(p + "shortconv.conv.weight", e * spec.conv_kernel, 0.0f, 0.6f);
      w.add_tensor_f32(p + "shortconv.conv.weight", GGMLType::F32, {spec.conv_kernel, e}, taps.data());
      continue;
    }
    if (phi) {  // one matrix: the Q rows, then K, then V (Phi-3's qkv_proj)
      b.stacked(p + "attn_qkv.weight", e, {{p + "attn_q.weight", q_dim, 1.5f * se}, {p + "attn_k.weight", kvd, 1.5f * se},
                                           {p + "attn_v.weight", kvd, se}});
    } else {
      b.matrix(p + "attn_q.weight", e, q_dim, 1.5f * se);
      b.matrix(p + "attn_k.weight", e, kvd, 1.5f * se);
      b.matrix(p + "attn_v.weight", e, kvd, se);
    }
    if (spec.qkv_bias) {
      b.vec(p + "attn_q.bias", q_dim, 0.0f, 0.1f);
      b.vec(p + "attn_k.bias", kvd, 0.0f, 0.1f);
      b.vec(p + "attn_v.bias", kvd, 0.0f, 0.1f);
    }
    if (qk_norm) {
      b.vec(p + "attn_q_norm.weight", head_dim, 1.0f, 0.1f);
      b.vec(p + "attn_k_norm.weight", head_dim, 1.0f, 0.1f);
    }
    b.matrix(p + "attn_output.weight", q_dim, e, 0.6f / std::sqrt(float(q_dim)));
    if (gemma) b.vec(p + "post_attention_norm.weight", e, 1.0f, 0.1f);
  }
  // LFM2's final norm is its embedding_norm, which the converter names token_embd_norm.
  b.vec(lfm2 ? "token_embd_norm.weight" : "output_norm.weight", e, 1.0f, 0.1f);
  if (!spec.tied_output) b.matrix("output.weight", e, n_vocab, se * spec.output_scale);
  if (spec.llama3_factor > 0) {
    const std::vector<float> f = llama3_rope_factors(spec);
    w.add_tensor_f32("rope_freqs.weight", GGMLType::F32, {int64_t(f.size())}, f.data());
  }
  if (spec.longrope_orig_ctx > 0) {
    // LongRoPE's per-frequency divisors: short ones near 1, long ones growing to ~the context ratio
    // toward the low frequencies, as Phi-3.5's config lists them.
    const int half = n_rot / 2;
    const float ratio = float(spec.n_ctx) / float(spec.longrope_orig_ctx);
    const std::vector<float> shrt = b.draw("rope_factors_short.weight", half, 1.0f, 0.05f);
    std::vector<float> lng(static_cast<size_t>(half));
    for (int i = 0; i < half; ++i) lng[size_t(i)] = 1.0f + (ratio * 2.0f - 1.0f) * float(i) / float(std::max(1, half - 1));
    w.add_tensor_f32("rope_factors_long.weight", GGMLType::F32, {half}, lng.data());
    w.add_tensor_f32("rope_factors_short.weight", GGMLType::F32, {half}, shrt.data());
  }
  w.write(path);
}

namespace {

const char* kGenModelUsage =
    "usage: edgevlm gen-model --out FILE --embd N --layers N --heads N --ff N --ctx N\n"
    "                         (--vocab-from GGUF | --vocab-size N) [options]\n"
    "Writes a decoder GGUF with random weights (deterministic in the seed), for tests and benchmarks.\n"
    "  --out FILE          output GGUF path\n"
    "  --arch A            llama (normal RoPE, default), qwen2 (NeoX RoPE), qwen3 (q/k norms),\n"
    "                      gemma3 (post-norms, GELU, sliding window), phi3 (fused QKV and gate/up),\n"
    "                      lfm2 (short convolutions and attention)\n"
    "  --embd N            hidden size\n"
    "  --layers N          decoder blocks\n"
    "  --heads N           attention heads\n"
    "  --kv-heads N        key/value heads (grouped-query attention; default: --heads)\n"
    "  --ff N              SwiGLU hidden size\n"
    "  --ctx N             trained context length written to the file\n"
    "  --type T            matrix type: f32 (default), f16, bf16, q8_0, q4_0; norms and biases stay f32\n"
    "  --seed S            random seed (default 1)\n"
    "  --vocab-from GGUF   copy the tokenizer.* keys (and vocabulary size) of this GGUF\n"
    "  --vocab-size N      vocabulary size when no --vocab-from (the file then has no tokenizer)\n"
    "  --rope-base B       rope.freq_base (default 10000)\n"
    "  --rope-sections T,H,W  qwen2vl: M-RoPE rotation pairs per coordinate (rope.dimension_sections)\n"
    "  --eps E             RMSNorm epsilon (default 1e-5)\n"
    "  --qkv-bias          add q/k/v biases (as qwen2 has)\n"
    "  --tied              no output.weight: the output projection reuses token_embd\n"
    "  --head-dim N        head size (default embd / heads); written as attention.key_length\n"
    "  --rot N             rotated dimensions per head (rope.dimension_count; default the head size)\n"
    "  --llama3-rope F,L,H,C  llama: Llama 3 RoPE scaling as rope_freqs.weight (factor F, low/high\n"
    "                      frequency factors L/H, original context C; Llama 3.1: 8,1,4,8192)\n"
    "  --longrope C        phi3: LongRoPE factors and attention factor for original context C < --ctx\n"
    "  --swa N             gemma3: attention.sliding_window (local layers see the last N positions)\n"
    "  --attn-layers I,J   lfm2: the attention layers (the others are 3-tap short convolutions)\n"
    "  --rope-linear F     linear RoPE scaling by F (rope.scaling.type linear; gemma3: global layers only)\n";

long parse_long(const char* flag, const char* s) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s, &end, 10);
  EV_CHECK(end != s && *end == '\0' && errno == 0, "gen-model: %s expects an integer, got '%s'", flag, s);
  return v;
}

double parse_double(const char* flag, const char* s) {
  char* end = nullptr;
  double v = std::strtod(s, &end);
  EV_CHECK(end != s && *end == '\0' && std::isfinite(v), "gen-model: %s expects a number, got '%s'", flag, s);
  return v;
}

GGMLType parse_type(const std::string& s) {
  if (s == "f32") return GGMLType::F32;
  if (s == "f16") return GGMLType::F16;
  if (s == "bf16") return GGMLType::BF16;
  if (s == "q8_0") return GGMLType::Q8_0;
  if (s == "q4_0") return GGMLType::Q4_0;
  fail("gen-model: unknown --type '%s' (f32, f16, bf16, q8_0, q4_0)", s.c_str());
}

}  // namespace

int gen_model_main(int argc, char** argv) {
  try {
    RandomLlamaSpec spec;
    std::string out;
    int kv_heads = 0;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto val = [&]() -> const char* {
        EV_CHECK(i + 1 < argc, "gen-model: %s needs a value", a.c_str());
        return argv[++i];
      };
      auto int_val = [&](int lo) {
        const char* s = val();
        long v = parse_long(a.c_str(), s);
        EV_CHECK(v >= lo && v <= (1L << 24), "gen-model: %s %ld is out of range", a.c_str(), v);
        return int(v);
      };
      if (a == "-h" || a == "--help") {
        std::fputs(kGenModelUsage, stdout);
        return 0;
      } else if (a == "--out" || a == "-o") {
        out = val();
      } else if (a == "--arch") {
        spec.arch = val();
      } else if (a == "--embd") {
        spec.n_embd = int_val(1);
      } else if (a == "--layers") {
        spec.n_layer = int_val(1);
      } else if (a == "--heads") {
        spec.n_head = int_val(1);
      } else if (a == "--kv-heads") {
        kv_heads = int_val(1);
      } else if (a == "--ff") {
        spec.n_ff = int_val(1);
      } else if (a == "--ctx") {
        spec.n_ctx = int_val(1);
      } else if (a == "--type") {
        spec.weight_type = parse_type(val());
      } else if (a == "--seed") {
        const char* s = val();
        char* end = nullptr;
        errno = 0;
        spec.seed = std::strtoull(s, &end, 10);
        EV_CHECK(end != s && *end == '\0' && errno == 0 && s[0] != '-', "gen-model: --seed expects a non-negative integer, got '%s'", s);
      } else if (a == "--vocab-from") {
        spec.vocab_from = val();
      } else if (a == "--vocab-size") {
        spec.n_vocab = int_val(1);
      } else if (a == "--rope-base") {
        spec.rope_freq_base = float(parse_double(a.c_str(), val()));
      } else if (a == "--rope-sections") {
        const char* v = val();
        EV_CHECK(std::sscanf(v, "%d,%d,%d", &spec.rope_sections[0], &spec.rope_sections[1], &spec.rope_sections[2]) == 3 &&
                     spec.rope_sections[0] >= 0 && spec.rope_sections[1] >= 0 && spec.rope_sections[2] >= 0,
                 "gen-model: --rope-sections expects T,H,W (non-negative), got '%s'", v);
      } else if (a == "--eps") {
        spec.rms_eps = float(parse_double(a.c_str(), val()));
      } else if (a == "--qkv-bias") {
        spec.qkv_bias = true;
      } else if (a == "--tied") {
        spec.tied_output = true;
      } else if (a == "--head-dim") {
        spec.head_dim = int_val(2);
      } else if (a == "--rot") {
        spec.n_rot = int_val(2);
      } else if (a == "--llama3-rope") {
        const std::string v = val();
        char tail = 0;
        EV_CHECK(std::sscanf(v.c_str(), "%f,%f,%f,%d%c", &spec.llama3_factor, &spec.llama3_low, &spec.llama3_high,
                             &spec.llama3_orig_ctx, &tail) == 4,
                 "gen-model: --llama3-rope expects FACTOR,LOW,HIGH,ORIG_CTX, got '%s'", v.c_str());
      } else if (a == "--longrope") {
        spec.longrope_orig_ctx = int_val(1);
      } else if (a == "--swa") {
        spec.n_swa = int_val(1);
      } else if (a == "--rope-linear") {
        spec.rope_linear_factor = float(parse_double(a.c_str(), val()));
      } else if (a == "--attn-layers") {
        const std::string v = val();
        spec.attn_layers.clear();
        for (size_t pos = 0; pos <= v.size();) {
          const size_t comma = std::min(v.find(',', pos), v.size());
          spec.attn_layers.push_back(int(parse_long("--attn-layers", v.substr(pos, comma - pos).c_str())));
          pos = comma + 1;
        }
      } else {
        fail("gen-model: unknown flag '%s' (see --help)", a.c_str());
      }
    }
    EV_CHECK(!out.empty(), "gen-model: --out FILE is required (see --help)");
    spec.n_head_kv = kv_heads > 0 ? kv_heads : spec.n_head;
    write_random_llama(out, spec);
    int n_vocab = spec.n_vocab;
    if (!spec.vocab_from.empty()) n_vocab = int(GGUFFile::open(out)->get_int(spec.arch + ".vocab_size"));
    std::fprintf(stderr, "gen-model: wrote %s (%s, %s, %.3gM parameters)\n", out.c_str(), spec.arch.c_str(),
                 type_name(spec.weight_type).c_str(), double(random_llama_param_count(spec, n_vocab)) / 1e6);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}

namespace {

// Whether a base tensor is a matrix the model multiplies (what an adapter may target), and its
// short name ("attn_q", "output"; a vision model's: "attn_out", "projector" for its mm.* matrices)
// for --targets.
bool lora_target_name(std::string tensor, std::string* short_name) {
  static const std::set<std::string> kBlockMatrices = {
      "attn_q", "attn_k", "attn_v", "attn_qkv", "attn_output", "attn_out", "ffn_gate", "ffn_up", "ffn_down",
      "shortconv.in_proj", "shortconv.out_proj"};
  if (tensor == "output.weight") {
    *short_name = "output";
    return true;
  }
  const std::string suffix = ".weight";
  if (tensor.rfind("mm.", 0) == 0 && tensor != "mm.input_projection.weight" && tensor.size() > suffix.size() &&
      tensor.compare(tensor.size() - suffix.size(), suffix.size(), suffix) == 0) {
    *short_name = "projector";
    return true;
  }
  if (tensor.rfind("v.blk.", 0) == 0) tensor = tensor.substr(2);  // a ViT block's matrices
  if (tensor.rfind("blk.", 0) != 0 || tensor.size() <= suffix.size() ||
      tensor.compare(tensor.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  const size_t dot = tensor.find('.', 4);
  if (dot == std::string::npos) return false;
  *short_name = tensor.substr(dot + 1, tensor.size() - suffix.size() - dot - 1);
  return kBlockMatrices.count(*short_name) != 0;
}

const char* kGenLoraUsage =
    "usage: edgevlm gen-lora --base MODEL.gguf --out ADAPTER.gguf [options]\n"
    "Writes a LoRA adapter with random values for MODEL (llama.cpp's GGUF adapter format), for tests.\n"
    "  --base FILE     the base model (architecture, tensor names and shapes)\n"
    "  --out FILE      output GGUF path\n"
    "  --rank R        adapter rank (default 8)\n"
    "  --alpha A       adapter.lora.alpha (default 16; the scale is alpha / rank)\n"
    "  --targets T,... attn_q, attn_k, attn_v, attn_qkv, attn_output, ffn_gate, ffn_up, ffn_down,\n"
    "                  shortconv.in_proj, shortconv.out_proj, output, or all (default); a vision model\n"
    "                  (mmproj, general.architecture clip): attn_q .. attn_out, ffn_*, projector\n"
    "  --type T        f32 (default), f16, bf16, q8_0\n"
    "  --strength S    rms of the scaled update relative to the base matrix's (default 0.5)\n"
    "  --seed S        random seed (default 1)\n";

}  // namespace

int write_random_lora(const std::string& path, const RandomLoraSpec& spec) {
  EV_CHECK(spec.rank >= 1 && spec.rank <= 4096, "gen-lora: rank %d is outside [1, 4096]", spec.rank);
  EV_CHECK(std::isfinite(spec.alpha) && std::isfinite(spec.strength) && spec.strength >= 0,
           "gen-lora: alpha and strength must be finite, strength >= 0");
  EV_CHECK(spec.type == GGMLType::F32 || spec.type == GGMLType::F16 || spec.type == GGMLType::BF16 ||
               spec.type == GGMLType::Q8_0,
           "gen-lora: type %s is not one of f32, f16, bf16, q8_0", type_name(spec.type).c_str());
  auto base = GGUFFile::open(spec.base);
  const std::string arch = base->get_string("general.architecture");
  const bool all = std::find(spec.targets.begin(), spec.targets.end(), "all") != spec.targets.end();
  GGUFWriter w;
  w.set_string("general.architecture", arch);
  w.set_string("general.type", "adapter");
  w.set_string("general.name", "edgevlm-random-lora");
  w.set_string("adapter.type", "lora");
  w.set_f32("adapter.lora.alpha", spec.alpha);
  const float s = spec.alpha != 0 ? spec.alpha / float(spec.rank) : 1.0f;
  const int64_t r = spec.rank;
  RandomLlamaSpec draw_spec;
  draw_spec.seed = spec.seed;
  GGUFWriter unused;
  Builder b{draw_spec, unused};
  std::set<std::string> matched;
  int n = 0;
  for (const GGUFTensorInfo& t : base->tensors()) {
    std::string short_name;
    if (!lora_target_name(t.name, &short_name)) continue;
    if (short_name == "projector" && t.ne.size() != 2) continue;  // the projector's norms
    if (!all && std::find(spec.targets.begin(), spec.targets.end(), short_name) == spec.targets.end()) continue;
    matched.insert(short_name);
    EV_CHECK(t.ne.size() == 2, "gen-lora: %s: tensor '%s' is not 2-D", spec.base.c_str(), t.name.c_str());
    const int64_t n_in = t.ne[0], n_out = t.ne[1];
    // The base matrix's rms, from its dequantized rows.
    double sum2 = 0;
    std::vector<float> row(static_cast<size_t>(n_in));
    for (int64_t o = 0; o < n_out; ++o) {
      dequantize_row(t.type, t.data + size_t(o) * row_bytes(t.type, n_in), row.data(), n_in);
      for (float x : row) sum2 += double(x) * x;
    }
    const float rms_w = float(std::sqrt(sum2 / double(n_in * n_out)));
    // (s·B·A)[o,i] = s·Σ_k B[o,k]·A[k,i]: rms s·√r·sd_b·sd_a with sd_a = 1/√n_in.
    const float sd_a = 1.0f / std::sqrt(float(n_in));
    const float sd_b = spec.strength * rms_w / (std::fabs(s) * std::sqrt(float(r)) * sd_a);
    const std::vector<float> a = b.draw(t.name + ".lora_a", n_in * r, 0.0f, sd_a);
    const std::vector<float> bv = b.draw(t.name + ".lora_b", r * n_out, 0.0f, sd_b);
    w.add_tensor_f32(t.name + ".lora_a", spec.type, {n_in, r}, a.data());
    w.add_tensor_f32(t.name + ".lora_b", spec.type, {r, n_out}, bv.data());
    ++n;
  }
  for (const std::string& want : spec.targets)
    EV_CHECK(want == "all" || matched.count(want), "gen-lora: %s has no matrix '%s' (see --help for the names)",
             spec.base.c_str(), want.c_str());
  EV_CHECK(n > 0, "gen-lora: %s has no matrix to adapt", spec.base.c_str());
  w.write(path);
  return n;
}

int gen_lora_main(int argc, char** argv) {
  try {
    RandomLoraSpec spec;
    std::string out;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto val = [&]() -> const char* {
        EV_CHECK(i + 1 < argc, "gen-lora: %s needs a value", a.c_str());
        return argv[++i];
      };
      if (a == "-h" || a == "--help") {
        std::fputs(kGenLoraUsage, stdout);
        return 0;
      } else if (a == "--base") {
        spec.base = val();
      } else if (a == "--out" || a == "-o") {
        out = val();
      } else if (a == "--rank") {
        const long v = parse_long("--rank", val());
        EV_CHECK(v >= 1 && v <= 4096, "gen-lora: --rank %ld is outside [1, 4096]", v);
        spec.rank = int(v);
      } else if (a == "--alpha") {
        spec.alpha = float(parse_double("--alpha", val()));
      } else if (a == "--strength") {
        spec.strength = float(parse_double("--strength", val()));
      } else if (a == "--type") {
        spec.type = parse_type(val());
      } else if (a == "--targets") {
        const std::string v = val();
        spec.targets.clear();
        for (size_t pos = 0; pos <= v.size();) {
          const size_t comma = std::min(v.find(',', pos), v.size());
          if (comma > pos) spec.targets.push_back(v.substr(pos, comma - pos));
          pos = comma + 1;
        }
        EV_CHECK(!spec.targets.empty(), "gen-lora: --targets needs at least one name");
      } else if (a == "--seed") {
        const char* s = val();
        char* end = nullptr;
        errno = 0;
        spec.seed = std::strtoull(s, &end, 10);
        EV_CHECK(end != s && *end == '\0' && errno == 0 && s[0] != '-',
                 "gen-lora: --seed expects a non-negative integer, got '%s'", s);
      } else {
        fail("gen-lora: unknown flag '%s' (see --help)", a.c_str());
      }
    }
    EV_CHECK(!spec.base.empty() && !out.empty(), "gen-lora: --base FILE and --out FILE are required (see --help)");
    const int n = write_random_lora(out, spec);
    std::fprintf(stderr, "gen-lora: wrote %s (%d matrices, rank %d, alpha %g, %s)\n", out.c_str(), n, spec.rank,
                 double(spec.alpha), type_name(spec.type).c_str());
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}

// The vision half of a random pair as llama.cpp's converter writes it: the spec's shapes, its
// mean/std, and none of edgevlm's own keys (no edgevlm.*, no clip.has_text_encoder).
static RandomMmproj converter_mmproj(const RandomIdefics3Spec& s, ProjectorType projector, uint64_t seed_salt) {
  RandomMmprojSpec v;
  v.image_size = s.image_size;
  v.patch_size = s.patch_size;
  v.n_embd = s.n_embd;
  v.n_ff = s.n_ff_vit;
  v.n_layer = s.n_layer_vit;
  v.n_head = s.n_head_vit;
  v.projection_dim = s.projection_dim;
  if (projector == ProjectorType::InternVL) v.proj_hidden = s.projection_dim;
  v.scale_factor = s.scale_factor;
  v.projector = projector;
  v.weight_type = s.vision_type;
  v.seed = s.seed * 7919 + seed_salt;
  v.window_pattern = s.window_pattern;
  RandomMmproj m = make_random_mmproj(v);
  std::erase_if(m.keys, [](const auto& kv) {
    return kv.first.rfind("edgevlm.", 0) == 0 || kv.first == "clip.has_text_encoder";
  });
  for (auto& [k, val] : m.keys) {
    if (k == "clip.vision.image_mean") val = GGUFValue::from_f32s({s.image_mean[0], s.image_mean[1], s.image_mean[2]});
    if (k == "clip.vision.image_std") val = GGUFValue::from_f32s({s.image_std[0], s.image_std[1], s.image_std[2]});
  }
  return m;
}

// The decoder half of a random VLM pair: the spec's sizes, type, seed and vocabulary.
static RandomLlamaSpec vlm_decoder_spec(const RandomIdefics3Spec& s, const char* arch) {
  RandomLlamaSpec l;
  l.arch = arch;
  l.n_embd = s.projection_dim;
  l.n_layer = s.n_layer;
  l.n_head = s.n_head;
  l.n_head_kv = s.n_head_kv;
  l.n_ff = s.n_ff;
  l.n_ctx = s.n_ctx;
  l.weight_type = s.llm_type;
  l.seed = s.seed;
  l.vocab_from = s.vocab_from;
  l.output_scale = s.output_scale;
  return l;
}

std::vector<std::string> smolvlm_added_tokens() {
  std::vector<std::string> t = {"<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>",
                                "<global-img>"};
  for (int r = 1; r <= 6; ++r)
    for (int c = 1; c <= 6; ++c) t.push_back("<row_" + std::to_string(r) + "_col_" + std::to_string(c) + ">");
  return t;
}

void write_random_idefics3(const std::string& llm_path, const std::string& mmproj_path, const RandomIdefics3Spec& s) {
  EV_CHECK(!s.vocab_from.empty(), "random idefics3 pair: a vocabulary file (vocab_from) is needed");
  RandomLlamaSpec l = vlm_decoder_spec(s, "llama");
  l.rope_freq_base = 100000;  // SmolLM2's
  l.added_tokens = smolvlm_added_tokens();
  l.bos_token = "<|im_start|>";
  l.eos_token = "<end_of_utterance>";
  l.add_bos = 0;  // the chat template writes <|im_start|> itself
  write_random_llama(llm_path, l);

  RandomMmproj m = converter_mmproj(s, ProjectorType::Idefics3, 17);
  if (s.preproc_image_size > 0)
    m.keys.emplace_back("clip.vision.preproc_image_size", GGUFValue::from_u32(uint32_t(s.preproc_image_size)));
  m.writer().write(mmproj_path);
}

std::vector<std::string> lfm2vl_added_tokens() {
  std::vector<std::string> t = {"<|startoftext|>", "<|im_start|>", "<|im_end|>", "<image>",
                                "<|image_start|>", "<|image_end|>", "<|img_thumbnail|>"};
  for (int r = 1; r <= kLfm2MaxTiles; ++r)
    for (int c = 1; c <= kLfm2MaxTiles; ++c)
      t.push_back("<|img_row_" + std::to_string(r) + "_col_" + std::to_string(c) + "|>");
  return t;
}

void write_random_lfm2vl(const std::string& llm_path, const std::string& mmproj_path, const RandomIdefics3Spec& s) {
  EV_CHECK(!s.vocab_from.empty(), "random lfm2 pair: a vocabulary file (vocab_from) is needed");
  RandomLlamaSpec l = vlm_decoder_spec(s, "lfm2");
  l.rope_freq_base = 1000000;  // LFM2's
  for (int i = 1; i < s.n_layer; i += 2) l.attn_layers.push_back(i);  // convolutions and attention alternate
  l.added_tokens = lfm2vl_added_tokens();
  l.bos_token = "<|startoftext|>";
  l.eos_token = "<|im_end|>";
  l.add_bos = 0;  // the chat template writes <|startoftext|> itself
  write_random_llama(llm_path, l);

  RandomMmproj m = converter_mmproj(s, ProjectorType::Lfm2, 43);
  m.writer().write(mmproj_path);
}

void write_random_gemma3vl(const std::string& llm_path, const std::string& mmproj_path, const RandomIdefics3Spec& s) {
  EV_CHECK(!s.vocab_from.empty(), "random gemma3 pair: a vocabulary file (vocab_from) is needed");
  RandomLlamaSpec l = vlm_decoder_spec(s, "gemma3");
  l.rope_freq_base = 1000000;  // Gemma 3's global layers
  l.n_swa = s.sliding_window;
  l.rms_eps = 1e-6f;
  l.added_tokens = {"<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>",
                    "<image_soft_token>"};
  l.bos_token = "<bos>";
  l.eos_token = "<end_of_turn>";
  l.add_bos = 0;  // the chat template writes <bos> itself
  write_random_llama(llm_path, l);

  RandomMmproj m = converter_mmproj(s, ProjectorType::Gemma3, 59);
  m.writer().write(mmproj_path);
}

void write_random_qwen2vl(const std::string& llm_path, const std::string& mmproj_path, const RandomIdefics3Spec& s,
                          bool qwen25) {
  EV_CHECK(!s.vocab_from.empty(), "random qwen2vl pair: a vocabulary file (vocab_from) is needed");
  RandomLlamaSpec l = vlm_decoder_spec(s, "qwen2vl");
  l.rope_freq_base = 1000000;  // Qwen2's
  l.qkv_bias = true;
  l.rms_eps = 1e-6f;
  // M-RoPE sections in Qwen2-VL's proportions (16, 24, 24 of 64 pairs).
  const int pairs = s.projection_dim / s.n_head / 2, t = std::max(1, pairs / 4), h = (pairs - t) / 2;
  l.rope_sections = {t, h, pairs - t - h};
  l.added_tokens = {"<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"};
  l.eos_token = "<|im_end|>";
  l.add_bos = 0;
  write_random_llama(llm_path, l);

  RandomIdefics3Spec v = s;
  v.image_mean = {0.48145466f, 0.4578275f, 0.40821073f};  // OpenAI CLIP's, as Qwen2-VL's processor
  v.image_std = {0.26862954f, 0.26130258f, 0.27577711f};
  v.scale_factor = 2;
  RandomMmproj m = converter_mmproj(v, qwen25 ? ProjectorType::Qwen25VL : ProjectorType::Qwen2VL, 71);
  m.writer().write(mmproj_path);
}

namespace {
const char* kGenIdefics3Usage =
    "usage: edgevlm gen-vlm-pair --family idefics3|internvl|lfm2|gemma3|qwen2vl|qwen25vl --out LLM.gguf\n"
    "                            --mmproj-out MMPROJ.gguf\n"
    "                            --vocab-from GPT2_VOCAB.gguf [flags]\n"
    "  A random-weight SmolVLM (idefics3), InternVL (internvl), LFM2-VL (lfm2), Gemma 3 (gemma3), Qwen2-VL\n"
    "  (qwen2vl) or Qwen2.5-VL (qwen25vl: window attention, every --wa-pattern-th layer full, default 4) pair in\n"
    "  llama.cpp's converter's conventions (lfm2: --tile is the position-embedding grid's size, 256 in the\n"
    "  real files; gemma3: --scale-factor is the average pool, --sliding-window N the local layers' window).\n"
    "  --min-tiles N --max-tiles N (internvl: clip.vision.preproc_min/max_tiles; 0: absent)\n"
    "  --seed S  --layers N --heads N --kv-heads N --ff N --embd N (decoder = projection width)  --type T\n"
    "  --tile PX --patch PX --vit-embd N --vit-ff N --vit-layers N --vit-heads N --scale-factor S\n"
    "  --longest-edge PX (clip.vision.preproc_image_size; 0: key absent)  --vision-type f16|f32|q8_0\n"
    "  --output-scale N (output.weight N times larger: clear greedy margins; default 8)\n";
}  // namespace

int gen_vlm_pair_main(int argc, char** argv) {
  try {
    RandomIdefics3Spec s;
    std::string llm, mmproj, family = "idefics3";
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto val = [&]() -> const char* {
        EV_CHECK(i + 1 < argc, "gen-vlm-pair: %s needs a value", a.c_str());
        return argv[++i];
      };
      auto int_val = [&](int lo) {
        const char* v = val();
        const long x = parse_long(a.c_str(), v);
        EV_CHECK(x >= lo && x <= (1L << 20), "gen-vlm-pair: %s %ld is out of range", a.c_str(), x);
        return int(x);
      };
      if (a == "-h" || a == "--help") {
        std::fputs(kGenIdefics3Usage, stdout);
        return 0;
      } else if (a == "--out") {
        llm = val();
      } else if (a == "--family") {
        family = val();
      } else if (a == "--min-tiles") {
        s.min_tiles = int_val(0);
      } else if (a == "--max-tiles") {
        s.max_tiles = int_val(0);
      } else if (a == "--mmproj-out") {
        mmproj = val();
      } else if (a == "--vocab-from") {
        s.vocab_from = val();
      } else if (a == "--seed") {
        s.seed = uint64_t(int_val(0));
      } else if (a == "--layers") {
        s.n_layer = int_val(1);
      } else if (a == "--heads") {
        s.n_head = int_val(1);
      } else if (a == "--kv-heads") {
        s.n_head_kv = int_val(1);
      } else if (a == "--ff") {
        s.n_ff = int_val(1);
      } else if (a == "--embd") {
        s.projection_dim = int_val(1);
      } else if (a == "--type") {
        s.llm_type = parse_type(val());
      } else if (a == "--vision-type") {
        s.vision_type = parse_type(val());
      } else if (a == "--tile") {
        s.image_size = int_val(1);
      } else if (a == "--patch") {
        s.patch_size = int_val(1);
      } else if (a == "--vit-embd") {
        s.n_embd = int_val(1);
      } else if (a == "--vit-ff") {
        s.n_ff_vit = int_val(1);
      } else if (a == "--vit-layers") {
        s.n_layer_vit = int_val(1);
      } else if (a == "--vit-heads") {
        s.n_head_vit = int_val(1);
      } else if (a == "--scale-factor") {
        s.scale_factor = int_val(1);
      } else if (a == "--sliding-window") {
        s.sliding_window = int_val(0);
      } else if (a == "--wa-pattern") {
        s.window_pattern = int_val(0);
      } else if (a == "--longest-edge") {
        s.preproc_image_size = int_val(0);
      } else if (a == "--output-scale") {
        s.output_scale = float(parse_long(a.c_str(), val()));
      } else {
        fail("gen-vlm-pair: unknown flag '%s' (see --help)", a.c_str());
      }
    }
    EV_CHECK(!llm.empty() && !mmproj.empty(), "gen-vlm-pair: --out and --mmproj-out are required");
    EV_CHECK(family == "idefics3" || family == "internvl" || family == "lfm2" || family == "gemma3" ||
                 family == "qwen2vl" || family == "qwen25vl",
             "gen-vlm-pair: --family must be idefics3, internvl, lfm2, gemma3, qwen2vl or qwen25vl");
    if (family == "idefics3") write_random_idefics3(llm, mmproj, s);
    else if (family == "internvl") write_random_internvl(llm, mmproj, s);
    else if (family == "lfm2") write_random_lfm2vl(llm, mmproj, s);
    else if (family == "qwen2vl" || family == "qwen25vl") write_random_qwen2vl(llm, mmproj, s, family == "qwen25vl");
    else write_random_gemma3vl(llm, mmproj, s);
    std::printf("wrote %s and %s (%s: tile %d, patch %d, scale factor %d)\n", llm.c_str(), mmproj.c_str(),
                family.c_str(), s.image_size, s.patch_size, s.scale_factor);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

void write_random_internvl(const std::string& llm_path, const std::string& mmproj_path, const RandomIdefics3Spec& s) {
  EV_CHECK(!s.vocab_from.empty(), "random internvl pair: a vocabulary file (vocab_from) is needed");
  RandomLlamaSpec l = vlm_decoder_spec(s, "qwen2");
  l.rope_freq_base = 1000000;  // Qwen2.5's
  l.qkv_bias = true;
  l.rms_eps = 1e-6f;
  l.added_tokens = {"<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>"};
  l.eos_token = "<|im_end|>";
  l.add_bos = 0;
  write_random_llama(llm_path, l);

  RandomMmproj m = converter_mmproj(s, ProjectorType::InternVL, 29);
  if (s.min_tiles > 0) m.keys.emplace_back("clip.vision.preproc_min_tiles", GGUFValue::from_u32(uint32_t(s.min_tiles)));
  if (s.max_tiles > 0) m.keys.emplace_back("clip.vision.preproc_max_tiles", GGUFValue::from_u32(uint32_t(s.max_tiles)));
  m.writer().write(mmproj_path);
}

}  // namespace edgevlm
