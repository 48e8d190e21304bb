// Norms, RoPE, activations and attention against direct double-precision formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "ops/activations.h"
#include "ops/attention.h"
#include "ops/cpu_features.h"
#include "ops/norms.h"
#include "ops/rope.h"
#include "ops/short_conv.h"

namespace edgevlm {
namespace {

std::vector<float> randv(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (float& x : v) x = scale * nd(rng);
  return v;
}

TEST(Norms, RmsNorm) {
  const int n = 37, rows = 3;
  auto x = randv(n * rows, 1), w = randv(n, 2);
  std::vector<float> y(x.size());
  rms_norm(x.data(), w.data(), 1e-5f, n, rows, y.data());
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += double(x[r * n + i]) * x[r * n + i];
    const double inv = 1.0 / std::sqrt(ss / n + 1e-5);
    for (int i = 0; i < n; ++i) EXPECT_NEAR(y[r * n + i], x[r * n + i] * inv * w[i], 1e-5);
  }
  rms_norm(x.data(), w.data(), 1e-5f, n, rows, x.data());  // in place
  EXPECT_EQ(x, y);
}

TEST(Norms, LayerNorm) {
  const int n = 50, rows = 2;
  auto x = randv(n * rows, 3, 3.0f), w = randv(n, 4), b = randv(n, 5);
  for (float& v : x) v += 10.0f;  // a large mean must not hurt
  std::vector<float> y(x.size()), y0(x.size());
  layer_norm(x.data(), w.data(), b.data(), 1e-6f, n, rows, y.data());
  layer_norm(x.data(), nullptr, nullptr, 1e-6f, n, rows, y0.data());
  for (int r = 0; r < rows; ++r) {
    double m = 0, v = 0;
    for (int i = 0; i < n; ++i) m += x[r * n + i];
    m /= n;
    for (int i = 0; i < n; ++i) v += (x[r * n + i] - m) * (x[r * n + i] - m);
    v /= n;
    for (int i = 0; i < n; ++i) {
      const double z = (x[r * n + i] - m) / std::sqrt(v + 1e-6);
      EXPECT_NEAR(y[r * n + i], z * w[i] + b[i], 1e-4);
      EXPECT_NEAR(y0[r * n + i], z, 1e-4);
    }
  }
}

TEST(Rope, NormalAndNeoXMatchFormula) {
  const int hd = 12, n_heads = 2, n_dims = 8;  // last 4 dims of each head pass through
  const float base = 10000.0f;
  for (RopeType type : {RopeType::Normal, RopeType::NeoX}) {
    for (int pos : {0, 1, 17, 1000}) {
      auto x = randv(hd * n_heads, 10 + pos);
      std::vector<float> y = x;
      std::vector<float> cs = rope_table(n_dims, base, pos, 1);
      rope_apply(type, y.data(), n_heads, hd, n_dims, cs.data());
      for (int h = 0; h < n_heads; ++h) {
        const float* xv = x.data() + h * hd;
        const float* yv = y.data() + h * hd;
        for (int i = 0; i < n_dims / 2; ++i) {
          const double th = pos * std::pow(double(base), -2.0 * i / n_dims);
          const int a = type == RopeType::Normal ? 2 * i : i;
          const int b = type == RopeType::Normal ? 2 * i + 1 : i + n_dims / 2;
          // ggml computes the angle as a running float product; allow for its rounding.
          const double tol = 1e-5 * (1.0 + std::fabs(th));
          EXPECT_NEAR(yv[a], xv[a] * std::cos(th) - xv[b] * std::sin(th), tol);
          EXPECT_NEAR(yv[b], xv[a] * std::sin(th) + xv[b] * std::cos(th), tol);
        }
        for (int i = n_dims; i < hd; ++i) EXPECT_EQ(yv[i], xv[i]);
      }
    }
  }
}

TEST(Rope, TableIsGgmlRunningProduct) {
  // Rows for positions 5 and 6 computed together equal rows computed alone.
  std::vector<float> both = rope_table(16, 500000.0f, 5, 2), one = rope_table(16, 500000.0f, 6, 1);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(both[16 + i], one[i]);
}

// Scaling as ggml_rope_ext applies it without YaRN: angle = freq_scale · θ_i / factor_i, and cos
// and sin times attn_factor.
TEST(Rope, ScalingFactorsAndAttnFactor) {
  const int n_dims = 8;
  const float factors[4] = {1.0f, 2.0f, 8.0f, 32.0f};
  RopeScaling s;
  s.freq_scale = 0.25f;
  s.freq_factors = factors;
  s.attn_factor = 1.2f;
  std::vector<float> plain = rope_table(n_dims, 10000.0f, 37, 1), got(n_dims);
  rope_table(n_dims, 10000.0f, 37, 1, got.data(), s);
  for (int i = 0; i < n_dims / 2; ++i) {
    const double th = 37 * std::pow(10000.0, -2.0 * i / n_dims) * 0.25 / factors[i];
    EXPECT_NEAR(got[2 * i], 1.2 * std::cos(th), 1e-5);
    EXPECT_NEAR(got[2 * i + 1], 1.2 * std::sin(th), 1e-5);
  }
  rope_table(n_dims, 10000.0f, 37, 1, got.data(), RopeScaling{});
  EXPECT_EQ(got, plain);
}

// M-RoPE with the same three coordinates is the plain NeoX table (a text token of Qwen2-VL), and
// each section takes its own coordinate; the ViT's 2-D form restarts the power at each section.
TEST(Rope, SectionsFollowGgmlRopeMulti) {
  const int n_rot = 16;
  const float base = 1000000.0f;
  const float scale = std::pow(base, -2.0f / float(n_rot));
  const int32_t same[3] = {37, 37, 37};
  std::vector<float> got(n_rot), plain = rope_table(n_rot, base, 37, 1);
  rope_table_sections(n_rot / 2, scale, {2, 3, 3, false}, same, 1, got.data());
  for (int i = 0; i < n_rot; ++i) EXPECT_NEAR(got[size_t(i)], plain[size_t(i)], 1e-6f);
  const int32_t pos[3] = {5, 9, 13};
  rope_table_sections(n_rot / 2, scale, {2, 3, 3, false}, pos, 1, got.data());
  for (int i = 0; i < n_rot / 2; ++i) {
    const int p = i < 2 ? 5 : i < 5 ? 9 : 13;
    const double th = p * std::pow(double(base), -2.0 * i / n_rot);
    EXPECT_NEAR(got[size_t(2 * i)], std::cos(th), 1e-5 * (1 + th));
    EXPECT_NEAR(got[size_t(2 * i + 1)], std::sin(th), 1e-5 * (1 + th));
  }
  // ViT (head 16: 8 pairs, rows then columns, 4 each, exponents restarting at 0).
  const int hd = 16;
  const int32_t rc[3] = {3, 7, 0};
  rope_table_sections(hd / 2, std::pow(10000.0f, -4.0f / hd), {hd / 4, hd / 4, 0, true}, rc, 1, got.data());
  for (int i = 0; i < hd / 2; ++i) {
    const int k = i % (hd / 4), p = i < hd / 4 ? 3 : 7;
    const double th = p * std::pow(10000.0, -4.0 * k / hd);
    EXPECT_NEAR(got[size_t(2 * i)], std::cos(th), 1e-5 * (1 + th));
    EXPECT_NEAR(got[size_t(2 * i + 1)], std::sin(th), 1e-5 * (1 + th));
  }
}

// LFM2's causal short convolution: against the formula over the whole sequence, and split into
// calls of 1, 2 and 4 positions that carry the state (a decode step, a chunked prefill).
TEST(ShortConv, CausalAndStateCarriesAcrossCalls) {
  const int64_t n = 7, dim = 5;
  const int K = 3;
  auto x = randv(n * dim, 41), w = randv(dim * K, 42);
  std::vector<float> want(size_t(n * dim), 0.0f);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < dim; ++c)
      for (int j = 0; j < K; ++j) {
        const int64_t tau = t - (K - 1) + j;
        if (tau >= 0) want[t * dim + c] += w[c * K + j] * x[tau * dim + c];
      }
  for (int64_t split : {7, 1, 2, 4}) {
    std::vector<float> state(size_t((K - 1) * dim), 0.0f), y(size_t(n * dim));
    for (int64_t t0 = 0; t0 < n; t0 += split) {
      const int64_t len = std::min(split, n - t0);
      short_conv_causal(x.data() + t0 * dim, len, dim, w.data(), K, state.data(), y.data() + t0 * dim);
    }
    for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], want[i], 1e-5) << "split " << split << " at " << i;
    // The state is the last K-1 inputs.
    for (int64_t i = 0; i < (K - 1) * dim; ++i) EXPECT_EQ(state[i], x[(n - (K - 1)) * dim + i]);
  }
}

TEST(Activations, SwigluGeluSoftmax) {
  auto g = randv(33, 1, 3.0f), u = randv(33, 2);
  std::vector<float> s = g;
  swiglu(s.data(), u.data(), 33);
  for (int i = 0; i < 33; ++i) EXPECT_NEAR(s[i], g[i] / (1.0 + std::exp(-double(g[i]))) * u[i], 1e-5);
  std::vector<float> ge = g;
  gelu_tanh(ge.data(), 33);
  for (int i = 0; i < 33; ++i) {
    const double x = g[i];
    EXPECT_NEAR(ge[i], 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))), 1e-5);
  }
  std::vector<float> gg = g;
  geglu_tanh(gg.data(), u.data(), 33);
  for (int i = 0; i < 33; ++i) EXPECT_NEAR(gg[i], ge[i] * u[i], 1e-6);
  std::vector<float> sm = {1000.0f, 1001.0f, 999.0f, -1e30f};  // huge values must not overflow
  softmax(sm.data(), 4);
  const double e0 = std::exp(-1.0), e2 = std::exp(-2.0), z = e0 + 1 + e2;
  EXPECT_NEAR(sm[0], e0 / z, 1e-6);
  EXPECT_NEAR(sm[1], 1 / z, 1e-6);
  EXPECT_NEAR(sm[2], e2 / z, 1e-6);
  EXPECT_EQ(sm[3], 0.0f);
  std::vector<float> y = {1, 2, 3, 4}, b = {10, 20};
  add_bias(y.data(), b.data(), 2, 2);
  EXPECT_EQ(y, (std::vector<float>{11, 22, 13, 24}));
}

// 0.5·x·(1 + tanh(u)) = x·sigmoid(2u): the form without cancellation, even in double, for x ≪ 0.
double gelu_exact(double x) { return x / (1 + std::exp(-2 * std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }
double silu_exact(double x) { return x / (1 + std::exp(-x)); }

// Inputs from −12 to 12 in steps of 1/64, then values whose exp over- or underflows.
std::vector<float> activation_inputs() {
  std::vector<float> x;
  for (int i = -768; i <= 768; ++i) x.push_back(float(i) / 64);
  for (float v : {-1e4f, -200.0f, -90.0f, -45.0f, 45.0f, 90.0f, 200.0f, 1e4f, 1e-20f, -1e-20f}) x.push_back(v);
  return x;
}

// The dispatched functions (AVX2 on x86, libm elsewhere) against double precision: within
// 2e-7·(1 + |x|) absolute. The AVX2 loops alone are also close in relative terms where GELU and
// SiLU are tiny (x ≪ 0, where the scalar 0.5·x·(1 + tanh) form cancels): 2e-6 plus the float
// rounding of the exponent t (1.5e-7·|t|, t = 2u for GELU, x for SiLU).
TEST(Activations, GeluAndSwigluMatchDoublePrecisionOnEveryPath) {
  const std::vector<float> x = activation_inputs();
  const int64_t n = int64_t(x.size());  // not a multiple of 8: the scalar tail runs too
  std::vector<float> y(x.size()), ones(x.size(), 1.0f), up = randv(x.size(), 9);
  gelu_tanh(x.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_NEAR(y[i], gelu_exact(x[i]), 2e-7 * (1 + std::fabs(x[i]))) << "gelu(" << x[i] << ")";
  std::vector<float> g = x;
  swiglu(g.data(), up.data(), n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_NEAR(g[i], silu_exact(x[i]) * up[i], 2e-7 * (1 + std::fabs(x[i] * up[i]))) << "silu(" << x[i] << ")";
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2: the scalar loops were the path checked";
  std::fill(y.begin(), y.end(), 7.0f);
  const int64_t done = gelu_tanh_avx2(x.data(), y.data(), n);
  EXPECT_EQ(done, n / 8 * 8);
  EXPECT_EQ(y[size_t(done)], 7.0f);  // the tail is left to the caller
  g = x;
  EXPECT_EQ(swiglu_avx2(g.data(), ones.data(), n), done);
  for (int64_t i = 0; i < done; ++i) {
    const double ge = gelu_exact(x[i]), se = silu_exact(x[i]);
    const double tg = 2 * std::sqrt(2 / M_PI) * (x[i] + 0.044715 * double(x[i]) * x[i] * x[i]);
    ASSERT_TRUE(std::isfinite(y[i]) && std::isfinite(g[i])) << x[i];
    if (std::fabs(ge) > 1e-30) {
      ASSERT_NEAR(y[i], ge, (2e-6 + 1.5e-7 * std::fabs(tg)) * std::fabs(ge)) << "gelu(" << x[i] << ")";
    }
    if (std::fabs(se) > 1e-30) {
      ASSERT_NEAR(g[i], se, (2e-6 + 1.5e-7 * std::fabs(x[i])) * std::fabs(se)) << "silu(" << x[i] << ")";
    }
  }
}

// Naive attention in double for one query row.
void naive_attention(const AttentionArgs& a, int i, std::vector<double>& out) {
  out.assign(size_t(a.n_head) * a.head_dim, 0.0);
  const int kv_len = int(a.pos0) + i + 1;
  for (int h = 0; h < a.n_head; ++h) {
    const int g = h / (a.n_head / a.n_head_kv);
    std::vector<double> s(static_cast<size_t>(kv_len));
    double mx = -1e300, sum = 0;
    for (int t = 0; t < kv_len; ++t) {
      double d = 0;
      for (int j = 0; j < a.head_dim; ++j)
        d += double(a.q[i * a.q_stride + h * a.head_dim + j]) * a.k[t * a.kv_stride + g * a.head_dim + j];
      s[size_t(t)] = d * a.scale;
      mx = std::max(mx, s[size_t(t)]);
    }
    for (double& e : s) sum += (e = std::exp(e - mx));
    for (int t = 0; t < kv_len; ++t)
      for (int j = 0; j < a.head_dim; ++j)
        out[size_t(h * a.head_dim + j)] += s[size_t(t)] / sum * a.v[t * a.kv_stride + g * a.head_dim + j];
  }
}

TEST(Attention, RefAndAvx2MatchNaive) {
  struct C { int n_head, n_head_kv, head_dim, n_q, pos0; };
  for (C c : {C{1, 1, 8, 1, 0}, C{4, 2, 20, 5, 3}, C{6, 3, 64, 9, 30}, C{8, 1, 80, 3, 100}, C{4, 4, 7, 2, 11}}) {
    SCOPED_TRACE(::testing::Message() << "heads " << c.n_head << "/" << c.n_head_kv << " hd " << c.head_dim
                                      << " n_q " << c.n_q << " pos0 " << c.pos0);
    const int kv_dim = c.n_head_kv * c.head_dim, q_dim = c.n_head * c.head_dim;
    const int n_pos = c.pos0 + c.n_q;
    auto q = randv(size_t(c.n_q) * q_dim, 1, 0.5f), k = randv(size_t(n_pos) * kv_dim, 2, 0.5f),
         v = randv(size_t(n_pos) * kv_dim, 3);
    std::vector<float> out_ref(size_t(c.n_q) * q_dim), out_fast(out_ref.size());
    AttentionArgs a;
    a.q = q.data(); a.q_stride = q_dim; a.k = k.data(); a.v = v.data(); a.kv_stride = kv_dim;
    a.out_stride = q_dim; a.n_q = c.n_q; a.pos0 = c.pos0; a.n_head = c.n_head; a.n_head_kv = c.n_head_kv;
    a.head_dim = c.head_dim; a.scale = 1.0f / std::sqrt(float(c.head_dim));
    a.out = out_ref.data();
    attention_ref(a);
    ThreadPool pool(3);
    a.out = out_fast.data();
    attention(a, pool);
    std::vector<double> want;
    for (int i = 0; i < c.n_q; ++i) {
      naive_attention(a, i, want);
      for (int j = 0; j < q_dim; ++j) {
        ASSERT_NEAR(out_ref[size_t(i * q_dim + j)], want[size_t(j)], 1e-5) << i << "," << j;
        ASSERT_NEAR(out_fast[size_t(i * q_dim + j)], want[size_t(j)], 1e-5) << i << "," << j;
      }
    }
    // Causality: changing the last position's K/V leaves every earlier query row unchanged.
    for (int j = 0; j < kv_dim; ++j) k[size_t((n_pos - 1) * kv_dim + j)] += 5, v[size_t((n_pos - 1) * kv_dim + j)] -= 5;
    std::vector<float> out2(out_fast.size());
    a.out = out2.data();
    attention(a, pool);
    for (int i = 0; i + 1 < c.n_q; ++i)
      for (int j = 0; j < q_dim; ++j) ASSERT_EQ(out2[size_t(i * q_dim + j)], out_fast[size_t(i * q_dim + j)]);
  }
}

TEST(Attention, RejectsBadGrouping) {
  std::vector<float> buf(64);
  AttentionArgs a;
  a.q = a.k = a.v = buf.data(); a.out = buf.data();
  a.n_q = 1; a.n_head = 3; a.n_head_kv = 2; a.head_dim = 4;
  ThreadPool pool(1);
  EXPECT_THROW(attention(a, pool), Error);
  EXPECT_THROW(attention_ref(a), Error);
}

}  // namespace
}  // namespace edgevlm
