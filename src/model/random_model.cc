#include "model/random_model.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"

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

void validate(const RandomLlamaSpec& s) {
  EV_CHECK(s.arch == "llama" || s.arch == "qwen2", "gen-model: architecture '%s' is not llama or qwen2",
           s.arch.c_str());
  EV_CHECK(s.n_embd > 0 && s.n_layer > 0 && s.n_head > 0 && s.n_head_kv > 0 && s.n_ff > 0 && s.n_ctx > 0,
           "gen-model: embd (%d), layers (%d), heads (%d), kv-heads (%d), ff (%d) and ctx (%d) must all be positive",
           s.n_embd, s.n_layer, s.n_head, s.n_head_kv, s.n_ff, s.n_ctx);
  EV_CHECK(s.n_embd % s.n_head == 0, "gen-model: embd %d is not a multiple of heads %d", s.n_embd, s.n_head);
  EV_CHECK(s.n_head % s.n_head_kv == 0, "gen-model: heads %d is not a multiple of kv-heads %d", s.n_head,
           s.n_head_kv);
  EV_CHECK((s.n_embd / s.n_head) % 2 == 0, "gen-model: head size %d must be even for RoPE", s.n_embd / s.n_head);
  EV_CHECK(file_type_of(s.weight_type) >= 0, "gen-model: weight type %s is not one of f32, f16, bf16, q8_0, q4_0",
           type_name(s.weight_type).c_str());
  const size_t blk = type_block_elems(s.weight_type);
  EV_CHECK(s.n_embd % int(blk) == 0 && s.n_ff % int(blk) == 0,
           "gen-model: embd %d and ff %d must be multiples of %zu for %s", s.n_embd, s.n_ff, blk,
           type_name(s.weight_type).c_str());
  EV_CHECK(s.rope_freq_base > 0, "gen-model: rope base must be positive");
  EV_CHECK(s.rms_eps > 0, "gen-model: eps must be positive");
}

}  // namespace

int64_t random_llama_param_count(const RandomLlamaSpec& s, int n_vocab) {
  const int64_t e = s.n_embd, hd = s.n_embd / s.n_head, kv = int64_t(s.n_head_kv) * hd, ff = s.n_ff;
  int64_t per_layer = 2 * e + e * e /*q*/ + 2 * e * kv /*k,v*/ + e * e /*o*/ + 3 * e * ff;
  if (s.qkv_bias) per_layer += e + 2 * kv;
  return int64_t(n_vocab) * e * (s.tied_output ? 1 : 2) + e + s.n_layer * per_layer;
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
  const int head_dim = spec.n_embd / spec.n_head;
  w.set_u32(a + ".context_length", uint32_t(spec.n_ctx));
  w.set_u32(a + ".embedding_length", uint32_t(spec.n_embd));
  w.set_u32(a + ".block_count", uint32_t(spec.n_layer));
  w.set_u32(a + ".feed_forward_length", uint32_t(spec.n_ff));
  w.set_u32(a + ".attention.head_count", uint32_t(spec.n_head));
  w.set_u32(a + ".attention.head_count_kv", uint32_t(spec.n_head_kv));
  w.set_u32(a + ".rope.dimension_count", uint32_t(head_dim));
  w.set_f32(a + ".rope.freq_base", spec.rope_freq_base);
  w.set_f32(a + ".attention.layer_norm_rms_epsilon", spec.rms_eps);

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
    n_vocab = int(vf->get_strings("tokenizer.ggml.tokens").size());
  }
  EV_CHECK(n_vocab > 0, "gen-model: no vocabulary: give a vocab GGUF or a vocab size");
  w.set_u32(a + ".vocab_size", uint32_t(n_vocab));

  // Scales relative to fan-in keep every layer's contribution to the residual stream of the same
  // order as the unit-variance token embeddings, whatever the width: activations stay O(1), the
  // attention is far from uniform (q·k/√d has a spread of ~2), and no single part dominates, so a
  // wrong RoPE, mask, norm or FFN shows in the logits. Norm weights are 1 ± 0.1 so a missing or
  // misapplied norm weight shows too.
  Builder b{spec, w};
  const float e = float(spec.n_embd), kvd = float(spec.n_head_kv * head_dim);
  b.matrix("token_embd.weight", spec.n_embd, n_vocab, 1.0f);
  for (int l = 0; l < spec.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    b.vec(p + "attn_norm.weight", spec.n_embd, 1.0f, 0.1f);
    b.matrix(p + "attn_q.weight", spec.n_embd, spec.n_embd, 1.5f / std::sqrt(e));
    b.matrix(p + "attn_k.weight", spec.n_embd, int64_t(kvd), 1.5f / std::sqrt(e));
    b.matrix(p + "attn_v.weight", spec.n_embd, int64_t(kvd), 1.0f / std::sqrt(e));
    if (spec.qkv_bias) {
      b.vec(p + "attn_q.bias", spec.n_embd, 0.0f, 0.1f);
      b.vec(p + "attn_k.bias", int64_t(kvd), 0.0f, 0.1f);
      b.vec(p + "attn_v.bias", int64_t(kvd), 0.0f, 0.1f);
    }
    b.matrix(p + "attn_output.weight", spec.n_embd, spec.n_embd, 0.6f / std::sqrt(e));
    b.vec(p + "ffn_norm.weight", spec.n_embd, 1.0f, 0.1f);
    b.matrix(p + "ffn_gate.weight", spec.n_embd, spec.n_ff, 1.0f / std::sqrt(e));
    b.matrix(p + "ffn_up.weight", spec.n_embd, spec.n_ff, 1.0f / std::sqrt(e));
    b.matrix(p + "ffn_down.weight", spec.n_ff, spec.n_embd, 0.6f / std::sqrt(float(spec.n_ff)));
  }
  b.vec("output_norm.weight", spec.n_embd, 1.0f, 0.1f);
  if (!spec.tied_output) b.matrix("output.weight", spec.n_embd, n_vocab, 1.0f / std::sqrt(e));
  w.write(path);
}

namespace {

const char* kGenModelUsage =
    "usage: edgevlm gen-model --out FILE --embd N --layers N --heads N --ff N --ctx N\n"
    "                         (--vocab-from GGUF | --vocab-size N) [options]\n"
    "Writes a LLaMA-family GGUF with random weights (deterministic in the seed), for tests and benchmarks.\n"
    "  --out FILE          output GGUF path\n"
    "  --arch A            llama (normal RoPE, default) or qwen2 (NeoX RoPE)\n"
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
    "  --eps E             RMSNorm epsilon (default 1e-5)\n"
    "  --qkv-bias          add q/k/v biases (as qwen2 has)\n"
    "  --tied              no output.weight: the output projection reuses token_embd\n";

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
      } else if (a == "--eps") {
        spec.rms_eps = float(parse_double(a.c_str(), val()));
      } else if (a == "--qkv-bias") {
        spec.qkv_bias = true;
      } else if (a == "--tied") {
        spec.tied_output = true;
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

}  // namespace edgevlm
