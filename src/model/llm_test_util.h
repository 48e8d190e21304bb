// Test helper (header only, used by llm_test.cc and prefill_test.cc): tiny random decoders built
// in memory with GGUFWriter, and a naive reference forward pass written independently of the
// engine's kernels — double accumulation, plain loops, RoPE angles from the closed formula
// theta = p · base^(−2i/n_rot) in double, and the layouts llama.cpp uses per architecture
// (llama_rope_type(): LLM_ARCH_LLAMA → NORM, adjacent pairs; LLM_ARCH_QWEN2 → NEOX, halves).
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "model/llm.h"

namespace edgevlm::testing {

struct TinySpec {
  std::string arch = "llama";
  int n_vocab = 53, n_embd = 64, n_layer = 2, n_head = 4, n_head_kv = 2, n_ff = 96, n_ctx = 256;
  int n_rot = -1;  // -1: key absent (= head_dim)
  bool qkv_bias = false;
  bool tied = false;
  GGMLType wtype = GGMLType::F32;
  float freq_base = 10000.0f;
  float eps = 1e-5f;
  uint64_t seed = 1;
};

inline std::vector<uint8_t> build_tiny_gguf(const TinySpec& s) {
  std::mt19937_64 rng(s.seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto randn = [&](size_t n, float scale, float offset = 0.0f) {
    std::vector<float> v(n);
    for (float& x : v) x = offset + scale * nd(rng);
    return v;
  };
  const int hd = s.n_embd / s.n_head;
  const int q_dim = s.n_head * hd, kv_dim = s.n_head_kv * hd;
  GGUFWriter w;
  const std::string a = s.arch + ".";
  w.set_string("general.architecture", s.arch);
  w.set_u32(a + "embedding_length", uint32_t(s.n_embd));
  w.set_u32(a + "block_count", uint32_t(s.n_layer));
  w.set_u32(a + "attention.head_count", uint32_t(s.n_head));
  w.set_u32(a + "attention.head_count_kv", uint32_t(s.n_head_kv));
  w.set_u32(a + "feed_forward_length", uint32_t(s.n_ff));
  w.set_u32(a + "context_length", uint32_t(s.n_ctx));
  w.set_f32(a + "attention.layer_norm_rms_epsilon", s.eps);
  w.set_f32(a + "rope.freq_base", s.freq_base);
  if (s.n_rot >= 0) w.set_u32(a + "rope.dimension_count", uint32_t(s.n_rot));

  auto mat = [&](const std::string& name, int n_in, int n_out) {
    std::vector<float> v = randn(size_t(n_in) * n_out, 1.0f / std::sqrt(float(n_in)));
    w.add_tensor_f32(name, s.wtype, {n_in, n_out}, v.data());
  };
  auto vec = [&](const std::string& name, int n, float scale, float offset) {
    std::vector<float> v = randn(static_cast<size_t>(n), scale, offset);
    w.add_tensor_f32(name, GGMLType::F32, {n}, v.data());
  };
  {
    std::vector<float> e = randn(size_t(s.n_embd) * s.n_vocab, 1.0f);
    w.add_tensor_f32("token_embd.weight", s.wtype, {s.n_embd, s.n_vocab}, e.data());
  }
  for (int l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    vec(p + "attn_norm.weight", s.n_embd, 0.1f, 1.0f);
    mat(p + "attn_q.weight", s.n_embd, q_dim);
    mat(p + "attn_k.weight", s.n_embd, kv_dim);
    mat(p + "attn_v.weight", s.n_embd, kv_dim);
    if (s.qkv_bias) {
      vec(p + "attn_q.bias", q_dim, 0.3f, 0.0f);
      vec(p + "attn_k.bias", kv_dim, 0.3f, 0.0f);
      vec(p + "attn_v.bias", kv_dim, 0.3f, 0.0f);
    }
    mat(p + "attn_output.weight", q_dim, s.n_embd);
    vec(p + "ffn_norm.weight", s.n_embd, 0.1f, 1.0f);
    mat(p + "ffn_gate.weight", s.n_embd, s.n_ff);
    mat(p + "ffn_up.weight", s.n_embd, s.n_ff);
    mat(p + "ffn_down.weight", s.n_ff, s.n_embd);
  }
  vec("output_norm.weight", s.n_embd, 0.1f, 1.0f);
  if (!s.tied) mat("output.weight", s.n_embd, s.n_vocab);
  return w.serialize();
}

struct TinyModel {
  std::unique_ptr<GGUFFile> file;
  std::unique_ptr<LlmModel> model;
};

inline TinyModel make_tiny_model(const TinySpec& s) {
  std::vector<uint8_t> bytes = build_tiny_gguf(s);
  TinyModel t;
  t.file = GGUFFile::from_memory(bytes.data(), bytes.size(), "tiny-" + s.arch + ".gguf");
  t.model = LlmModel::load(*t.file);
  return t;
}

// ---- naive reference forward (double) -------------------------------------------------------

using Mat = std::vector<std::vector<double>>;  // [n_out][n_in]

inline Mat ref_matrix(const GGUFFile& f, const std::string& name) {
  const GGUFTensorInfo& t = f.tensor(name);
  const int64_t n_in = t.ne[0], n_out = t.rows();
  Mat m(static_cast<size_t>(n_out), std::vector<double>(static_cast<size_t>(n_in)));
  std::vector<float> row(static_cast<size_t>(n_in));
  const size_t rb = row_bytes(t.type, n_in);
  for (int64_t o = 0; o < n_out; ++o) {
    dequantize_row(t.type, t.data + size_t(o) * rb, row.data(), n_in);
    for (int64_t i = 0; i < n_in; ++i) m[size_t(o)][size_t(i)] = row[size_t(i)];
  }
  return m;
}

inline std::vector<double> ref_vector(const GGUFFile& f, const std::string& name) {
  Mat m = ref_matrix(f, name);  // a 1-D tensor is one row
  return m[0];
}

inline std::vector<double> mv(const Mat& w, const std::vector<double>& x) {
  std::vector<double> y(w.size(), 0.0);
  for (size_t o = 0; o < w.size(); ++o)
    for (size_t i = 0; i < x.size(); ++i) y[o] += w[o][i] * x[i];
  return y;
}

inline std::vector<double> rmsnorm(const std::vector<double>& x, const std::vector<double>& g, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / double(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * g[i];
  return y;
}

inline void rope_ref(std::vector<double>& v, int n_heads, int hd, int n_rot, bool neox, int pos, double base) {
  for (int h = 0; h < n_heads; ++h) {
    double* x = v.data() + size_t(h) * hd;
    for (int i = 0; i < n_rot / 2; ++i) {
      const double theta = pos * std::pow(base, -2.0 * i / n_rot);
      const double c = std::cos(theta), s = std::sin(theta);
      const int a = neox ? i : 2 * i;
      const int b = neox ? i + n_rot / 2 : 2 * i + 1;
      const double x0 = x[a], x1 = x[b];
      x[a] = x0 * c - x1 * s;
      x[b] = x0 * s + x1 * c;
    }
  }
}

// Logits (n_vocab per position) for every position of `tokens`, from position 0.
inline std::vector<std::vector<double>> reference_forward(const GGUFFile& f, const std::vector<int32_t>& tokens) {
  const std::string arch = f.get_string("general.architecture");
  const std::string a = arch + ".";
  const int D = int(f.get_int(a + "embedding_length"));
  const int n_layer = int(f.get_int(a + "block_count"));
  const int n_head = int(f.get_int(a + "attention.head_count"));
  const int n_kv = int(f.get_int(a + "attention.head_count_kv"));
  const double eps = f.get_float(a + "attention.layer_norm_rms_epsilon");
  const double base = f.get_float(a + "rope.freq_base");
  const int hd = D / n_head;
  const int n_rot = int(f.get_int_or(a + "rope.dimension_count", hd));
  const bool neox = arch == "qwen2";
  const int T = int(tokens.size());

  Mat emb = ref_matrix(f, "token_embd.weight");
  std::vector<std::vector<double>> x(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t) x[size_t(t)] = emb[size_t(tokens[size_t(t)])];

  for (int l = 0; l < n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Mat wq = ref_matrix(f, p + "attn_q.weight"), wk = ref_matrix(f, p + "attn_k.weight");
    Mat wv = ref_matrix(f, p + "attn_v.weight"), wo = ref_matrix(f, p + "attn_output.weight");
    Mat wg = ref_matrix(f, p + "ffn_gate.weight"), wu = ref_matrix(f, p + "ffn_up.weight");
    Mat wd = ref_matrix(f, p + "ffn_down.weight");
    std::vector<double> g1 = ref_vector(f, p + "attn_norm.weight"), g2 = ref_vector(f, p + "ffn_norm.weight");
    const bool bias = f.find_tensor(p + "attn_q.bias") != nullptr;
    std::vector<std::vector<double>> Q(static_cast<size_t>(T)), K(static_cast<size_t>(T)), V(static_cast<size_t>(T));
    for (int t = 0; t < T; ++t) {
      std::vector<double> h = rmsnorm(x[size_t(t)], g1, eps);
      Q[size_t(t)] = mv(wq, h);
      K[size_t(t)] = mv(wk, h);
      V[size_t(t)] = mv(wv, h);
      if (bias) {
        std::vector<double> bq = ref_vector(f, p + "attn_q.bias"), bk = ref_vector(f, p + "attn_k.bias"),
                            bv = ref_vector(f, p + "attn_v.bias");
        for (size_t i = 0; i < bq.size(); ++i) Q[size_t(t)][i] += bq[i];
        for (size_t i = 0; i < bk.size(); ++i) K[size_t(t)][i] += bk[i], V[size_t(t)][i] += bv[i];
      }
      rope_ref(Q[size_t(t)], n_head, hd, n_rot, neox, t, base);
      rope_ref(K[size_t(t)], n_kv, hd, n_rot, neox, t, base);
    }
    for (int t = 0; t < T; ++t) {
      std::vector<double> att(size_t(n_head) * hd, 0.0);
      for (int h = 0; h < n_head; ++h) {
        const int g = h / (n_head / n_kv);
        std::vector<double> s(size_t(t) + 1);
        double mx = -1e300;
        for (int u = 0; u <= t; ++u) {
          double d = 0;
          for (int i = 0; i < hd; ++i) d += Q[size_t(t)][size_t(h * hd + i)] * K[size_t(u)][size_t(g * hd + i)];
          s[size_t(u)] = d / std::sqrt(double(hd));
          mx = std::max(mx, s[size_t(u)]);
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int u = 0; u <= t; ++u)
          for (int i = 0; i < hd; ++i) att[size_t(h * hd + i)] += s[size_t(u)] / sum * V[size_t(u)][size_t(g * hd + i)];
      }
      std::vector<double> o = mv(wo, att);
      for (int i = 0; i < D; ++i) x[size_t(t)][size_t(i)] += o[size_t(i)];
      std::vector<double> h = rmsnorm(x[size_t(t)], g2, eps);
      std::vector<double> gate = mv(wg, h), up = mv(wu, h);
      for (size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
      std::vector<double> dn = mv(wd, gate);
      for (int i = 0; i < D; ++i) x[size_t(t)][size_t(i)] += dn[size_t(i)];
    }
  }
  Mat out = f.find_tensor("output.weight") ? ref_matrix(f, "output.weight") : emb;
  std::vector<double> gn = ref_vector(f, "output_norm.weight");
  std::vector<std::vector<double>> logits(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t) logits[size_t(t)] = mv(out, rmsnorm(x[size_t(t)], gn, eps));
  return logits;
}

}  // namespace edgevlm::testing
