// Attention over F16 and INT8 K/V rows: the row format, the scalar reader against the F32 path on
// the same (dequantized) values, the SIMD kernels (AVX2 on x86-64; plain NEON and NEON with SDOT
// on aarch64, run under qemu by scripts/test_arm.sh) against the scalar reference in both q·k
// modes, and the error INT8 storage adds against exact F32 attention.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "formats/quant.h"
#include "ops/attention.h"
#include "ops/cpu_features.h"
#include "ops/matmul_internal.h"
#if defined(__aarch64__)
#include "ops/attention_neon.h"
#endif

namespace edgevlm {
namespace {

std::vector<float> randv(size_t n, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (float& x : v) x = scale * nd(rng);
  return v;
}

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

TEST(KvRowQ8, RoundTripAndEdges) {
  for (int n : {1, 7, 16, 80, 128}) {
    auto x = randv(size_t(n), uint64_t(n), 2.0f);
    std::vector<int8_t> q(static_cast<size_t>(n));
    const uint16_t d16 = quantize_kv_row_q8(x.data(), n, q.data());
    const float d = f16_to_f32(d16);
    EXPECT_NEAR(d, max_abs(x) / 127.0f, 1e-3f * d);
    std::vector<float> y(static_cast<size_t>(n));
    dequantize_kv_row_q8(q.data(), d16, n, y.data());
    int at_max = 0;
    for (int i = 0; i < n; ++i) {
      EXPECT_LE(std::fabs(y[size_t(i)] - x[size_t(i)]), 0.5f * d * 1.01f + 1e-7f) << i;
      EXPECT_GE(q[size_t(i)], -127);
      at_max += std::abs(q[size_t(i)]) == 127;
    }
    EXPECT_GE(at_max, 1);  // the largest magnitude uses the full range
  }
  std::vector<float> zeros(32, 0.0f);
  std::vector<int8_t> q(32, 5);
  EXPECT_EQ(f16_to_f32(quantize_kv_row_q8(zeros.data(), 32, q.data())), 0.0f);
  for (int8_t v : q) EXPECT_EQ(v, 0);
}

// The AVX2 row quantizer gives the scalar reference's bytes and scale exactly: random rows of many
// lengths and scales, and rows whose products fall on .5 (ties round to even) or past ±127.
TEST(KvRowQ8, Avx2MatchesScalar) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2/FMA/F16C on this CPU (or EDGEVLM_NO_SIMD set)";
  std::vector<std::vector<float>> rows;
  for (int n : {1, 7, 8, 16, 31, 32, 40, 80, 96, 128, 200})
    for (float s : {1e-6f, 0.3f, 2.0f, 1e4f}) rows.push_back(randv(size_t(n), uint64_t(n) * 7 + uint64_t(s * 10), s));
  for (int n : {8, 40, 80}) {
    std::vector<float> t(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) t[size_t(i)] = float(i % 2 ? -1 : 1) * (float(i % 127) + 0.5f);
    t[0] = 127.0f;  // d = 1 exactly: every other product is a tie
    rows.push_back(t);
  }
  rows.push_back(std::vector<float>(80, 0.0f));
  for (const auto& x : rows) {
    const int n = int(x.size());
    std::vector<int8_t> qa(size_t(n), 9), qb(size_t(n), 7);
    ASSERT_EQ(quantize_kv_row_q8_avx2(x.data(), n, qa.data()), quantize_kv_row_q8_ref(x.data(), n, qb.data())) << n;
    for (int i = 0; i < n; ++i) ASSERT_EQ(qa[size_t(i)], qb[size_t(i)]) << "n=" << n << " i=" << i << " x=" << x[size_t(i)];
  }
}

// K/V rows of one shape in F32 and in a storage type, plus the F32 values that storage holds.
struct Kv {
  KvElem type;
  int n_pos, n_head_kv, head_dim;
  std::vector<float> k, v;           // original values
  std::vector<float> k_deq, v_deq;   // what the stored rows decode to
  std::vector<uint16_t> k16, v16;    // F16 elements
  std::vector<int8_t> k8, v8;        // Q8 elements
  std::vector<uint16_t> ks, vs;      // Q8 scales

  Kv(KvElem t, int n_pos_, int n_head_kv_, int hd, uint64_t seed)
      : type(t), n_pos(n_pos_), n_head_kv(n_head_kv_), head_dim(hd) {
    const size_t n = size_t(n_pos) * n_head_kv * hd;
    k = randv(n, seed, 0.5f);
    v = randv(n, seed + 1, 1.0f);
    k_deq.resize(n), v_deq.resize(n);
    if (t == KvElem::F16) {
      k16.resize(n), v16.resize(n);
      for (size_t i = 0; i < n; ++i) {
        k16[i] = f32_to_f16(k[i]), v16[i] = f32_to_f16(v[i]);
        k_deq[i] = f16_to_f32(k16[i]), v_deq[i] = f16_to_f32(v16[i]);
      }
    } else if (t == KvElem::Q8) {
      k8.resize(n), v8.resize(n), ks.resize(n / size_t(hd)), vs.resize(n / size_t(hd));
      for (size_t r = 0; r < n / size_t(hd); ++r) {
        const size_t e = r * size_t(hd);
        ks[r] = quantize_kv_row_q8(k.data() + e, hd, k8.data() + e);
        vs[r] = quantize_kv_row_q8(v.data() + e, hd, v8.data() + e);
        dequantize_kv_row_q8(k8.data() + e, ks[r], hd, k_deq.data() + e);
        dequantize_kv_row_q8(v8.data() + e, vs[r], hd, v_deq.data() + e);
      }
    } else {
      k_deq = k, v_deq = v;
    }
  }
  void bind(AttentionArgs& a) const {
    a.kv_stride = int64_t(n_head_kv) * head_dim;
    a.kv_type = type;
    a.k = k.data(), a.v = v.data();
    if (type == KvElem::F16) a.k_raw = k16.data(), a.v_raw = v16.data();
    if (type == KvElem::Q8) a.k_raw = k8.data(), a.v_raw = v8.data(), a.k_scale = ks.data(), a.v_scale = vs.data();
  }
  void bind_f32(AttentionArgs& a, bool dequantized) const {
    a.kv_stride = int64_t(n_head_kv) * head_dim;
    a.kv_type = KvElem::F32;
    a.k = dequantized ? k_deq.data() : k.data();
    a.v = dequantized ? v_deq.data() : v.data();
    a.k_raw = a.v_raw = nullptr;
    a.k_scale = a.v_scale = nullptr;
  }
};

struct Shape {
  int n_head, n_head_kv, head_dim, n_q, pos0;
};
const Shape kShapes[] = {{1, 1, 8, 1, 0},  {4, 2, 20, 5, 3},   {6, 3, 64, 9, 30},  {8, 1, 80, 3, 100},
                         {4, 4, 7, 2, 11}, {32, 8, 80, 1, 300}, {32, 8, 80, 17, 40}, {12, 2, 48, 4, 9},
                         {2, 1, 16, 6, 0}, {5, 1, 33, 3, 70}};

struct AttnRun {
  std::vector<float> q, out;
  AttentionArgs a;
  AttnRun(const Shape& c, uint64_t seed) {
    const int q_dim = c.n_head * c.head_dim;
    q = randv(size_t(c.n_q) * q_dim, seed, 0.5f);
    out.assign(size_t(c.n_q) * q_dim, 0.0f);
    a.q = q.data(), a.q_stride = q_dim, a.out = out.data(), a.out_stride = q_dim;
    a.n_q = c.n_q, a.pos0 = c.pos0, a.n_head = c.n_head, a.n_head_kv = c.n_head_kv, a.head_dim = c.head_dim;
    a.scale = 1.0f / std::sqrt(float(c.head_dim));
  }
};

// The query as QkMode::Int8 sees it: each head quantized to int8 with one scale, then decoded.
void quantize_query(AttnRun& r, const Shape& c) {
  std::vector<int8_t> q8(size_t(c.head_dim));
  for (int i = 0; i < c.n_q; ++i)
    for (int h = 0; h < c.n_head; ++h) {
      float* qh = r.q.data() + (size_t(i) * c.n_head + h) * c.head_dim;
      dequantize_kv_row_q8(q8.data(), quantize_kv_row_q8(qh, c.head_dim, q8.data()), c.head_dim, qh);
    }
}

using Kernel = void (*)(const AttentionArgs&, ThreadPool&);

#if defined(__aarch64__)
void neon_plain(const AttentionArgs& a, ThreadPool& p) { attention_neon(a, p, NeonKernels::Plain); }
void neon_dotprod(const AttentionArgs& a, ThreadPool& p) { attention_neon(a, p, NeonKernels::Dotprod); }
#endif

// The SIMD kernels this CPU can run, by name.
std::vector<std::pair<std::string, Kernel>> simd_kernels() {
  std::vector<std::pair<std::string, Kernel>> k;
  if (cpu_has_avx2()) k.emplace_back("avx2", attention_avx2);
#if defined(__aarch64__)
  if (cpu_has_neon()) k.emplace_back("neon", neon_plain);
  if (cpu_has_neon_dotprod()) k.emplace_back("neon-dotprod", neon_dotprod);
#endif
  return k;
}

std::string name(const Shape& c, KvElem t) {
  return ::testing::PrintToString(c.n_head) + "/" + std::to_string(c.n_head_kv) + " hd " +
         std::to_string(c.head_dim) + " n_q " + std::to_string(c.n_q) + " pos0 " + std::to_string(c.pos0) + " " +
         kv_elem_name(t);
}

// The reader of each storage type computes exactly what F32 attention computes on the values the
// storage holds; every SIMD kernel matches that scalar reference within float rounding (2e-5):
// in QkMode::Float, and in QkMode::Int8 (INT8 storage) against the reference run on the
// int8-quantized query, since the int8 q·k sums are exact.
TEST(AttentionKv, TypedStorageMatchesF32OnStoredValues) {
  ThreadPool pool(3);
  const QkMode prev = attention_qk_mode();
  for (const Shape& c : kShapes) {
    for (KvElem t : {KvElem::F32, KvElem::F16, KvElem::Q8}) {
      SCOPED_TRACE(name(c, t));
      Kv kv(t, c.pos0 + c.n_q, c.n_head_kv, c.head_dim, 7);
      AttnRun want(c, 3), ref(c, 3), fast(c, 3), want_q8(c, 3);
      kv.bind_f32(want.a, true);
      attention_ref(want.a);
      kv.bind(ref.a);
      attention_ref(ref.a);
      EXPECT_LE(max_diff(ref.out, want.out), 1e-6f);
      kv.bind(fast.a);
      set_attention_qk_mode(QkMode::Float);
      attention(fast.a, pool);
      EXPECT_LE(max_diff(fast.out, want.out), 2e-5f);
      quantize_query(want_q8, c);
      kv.bind_f32(want_q8.a, true);
      attention_ref(want_q8.a);
      for (const auto& [kname, kernel] : simd_kernels()) {
        SCOPED_TRACE(kname);
        set_attention_qk_mode(QkMode::Float);
        std::fill(fast.out.begin(), fast.out.end(), NAN);
        kernel(fast.a, pool);
        EXPECT_LE(max_diff(fast.out, want.out), 2e-5f);
        if (t == KvElem::Q8) {
          set_attention_qk_mode(QkMode::Int8);
          std::fill(fast.out.begin(), fast.out.end(), NAN);
          kernel(fast.a, pool);
          EXPECT_LE(max_diff(fast.out, want_q8.out), 2e-5f) << "int8 q·k";
        }
      }
    }
  }
  set_attention_qk_mode(prev);
}

// Sliding window (gemma3's local layers): the query at position p sees p − window + 1 .. p only.
// The scalar reference with a window equals, row by row, plain causal attention over a cache that
// holds just the window's positions; the dispatcher (SIMD kernels on the shifted rows) matches the
// reference for every storage type, for windows shorter than, equal to and longer than the history.
TEST(AttentionKv, SlidingWindow) {
  ThreadPool pool(2);
  const QkMode prev = attention_qk_mode();
  set_attention_qk_mode(QkMode::Float);
  const Shape c{4, 2, 20, 9, 5};  // positions 5 .. 13
  for (int window : {1, 4, 8, 14, 40}) {
    Kv kv(KvElem::F32, c.pos0 + c.n_q, c.n_head_kv, c.head_dim, 5);
    AttnRun win(c, 9);
    kv.bind(win.a);
    win.a.window = window;
    attention_ref(win.a);
    const int q_dim = c.n_head * c.head_dim;
    for (int i = 0; i < c.n_q; ++i) {
      SCOPED_TRACE("window " + std::to_string(window) + " row " + std::to_string(i));
      const int p = c.pos0 + i, first = std::max(0, p - window + 1);
      AttnRun one({c.n_head, c.n_head_kv, c.head_dim, 1, p - first}, 1);
      std::copy(win.q.begin() + i * q_dim, win.q.begin() + (i + 1) * q_dim, one.q.begin());
      kv.bind(one.a);
      one.a.k += size_t(first) * kv.k.size() / size_t(kv.n_pos);
      one.a.v += size_t(first) * kv.v.size() / size_t(kv.n_pos);
      attention_ref(one.a);
      std::vector<float> row(win.out.begin() + i * q_dim, win.out.begin() + (i + 1) * q_dim);
      EXPECT_LE(max_diff(row, one.out), 1e-6f);
    }
    for (KvElem t : {KvElem::F32, KvElem::F16, KvElem::Q8}) {
      SCOPED_TRACE(std::string("window ") + std::to_string(window) + " " + kv_elem_name(t));
      Kv kt(t, c.pos0 + c.n_q, c.n_head_kv, c.head_dim, 5);
      AttnRun want(c, 9), got(c, 9);
      kt.bind_f32(want.a, true);
      want.a.window = window;
      attention_ref(want.a);
      kt.bind(got.a);
      got.a.window = window;
      attention(got.a, pool);
      EXPECT_LE(max_diff(got.out, want.out), 2e-5f);
    }
  }
  set_attention_qk_mode(prev);
}

// Bidirectional span (a Gemma 3 image, which llama.cpp decodes non-causally): a query inside
// [b, e) sees every position before e. Reference: the same query row on its own at position e − 1
// of plain causal attention (with its window moved so it still starts at p − window + 1); the
// dispatcher (SIMD kernels on the split rows) matches the reference for every storage type.
TEST(AttentionKv, BidirectionalSpan) {
  ThreadPool pool(2);
  const QkMode prev = attention_qk_mode();
  set_attention_qk_mode(QkMode::Float);
  const Shape c{4, 2, 20, 12, 5};  // positions 5 .. 16
  const int q_dim = c.n_head * c.head_dim;
  struct Span {
    int begin, end, window;
  };
  for (const Span sp : {Span{8, 14, 0}, Span{5, 17, 0}, Span{2, 9, 0}, Span{9, 15, 4}, Span{12, 13, 0}}) {
    SCOPED_TRACE("span " + std::to_string(sp.begin) + ".." + std::to_string(sp.end) + " window " +
                 std::to_string(sp.window));
    Kv kv(KvElem::F32, c.pos0 + c.n_q, c.n_head_kv, c.head_dim, 5);
    AttnRun bi(c, 9), causal(c, 9);
    kv.bind(bi.a);
    bi.a.bidir_begin = sp.begin, bi.a.bidir_end = sp.end, bi.a.window = sp.window;
    attention_ref(bi.a);
    kv.bind(causal.a);
    causal.a.window = sp.window;
    attention_ref(causal.a);
    for (int i = 0; i < c.n_q; ++i) {
      const int p = c.pos0 + i;
      std::vector<float> row(bi.out.begin() + i * q_dim, bi.out.begin() + (i + 1) * q_dim);
      if (p < sp.begin || p >= sp.end) {  // outside: causal
        std::vector<float> want(causal.out.begin() + i * q_dim, causal.out.begin() + (i + 1) * q_dim);
        EXPECT_EQ(row, want) << "row " << i;
        continue;
      }
      const int first = sp.window > 0 ? std::max(0, p - sp.window + 1) : 0;
      AttnRun one({c.n_head, c.n_head_kv, c.head_dim, 1, sp.end - 1 - first}, 1);
      std::copy(bi.q.begin() + i * q_dim, bi.q.begin() + (i + 1) * q_dim, one.q.begin());
      kv.bind(one.a);
      one.a.k += size_t(first) * kv.k.size() / size_t(kv.n_pos);
      one.a.v += size_t(first) * kv.v.size() / size_t(kv.n_pos);
      attention_ref(one.a);
      EXPECT_LE(max_diff(row, one.out), 1e-6f) << "row " << i;
    }
    for (KvElem t : {KvElem::F32, KvElem::F16, KvElem::Q8}) {
      SCOPED_TRACE(kv_elem_name(t));
      Kv kt(t, c.pos0 + c.n_q, c.n_head_kv, c.head_dim, 5);
      AttnRun want(c, 9), got(c, 9);
      kt.bind_f32(want.a, true);
      want.a.bidir_begin = got.a.bidir_begin = sp.begin;
      want.a.bidir_end = got.a.bidir_end = sp.end;
      want.a.window = got.a.window = sp.window;
      attention_ref(want.a);
      kt.bind(got.a);
      attention(got.a, pool);
      EXPECT_LE(max_diff(got.out, want.out), 2e-5f);
    }
  }
  // A span past the positions written is refused.
  Kv kv(KvElem::F32, c.pos0 + c.n_q, c.n_head_kv, c.head_dim, 5);
  AttnRun bad(c, 9);
  kv.bind(bad.a);
  bad.a.bidir_begin = 10, bad.a.bidir_end = 40;
  EXPECT_THROW(attention(bad.a, pool), Error);
  set_attention_qk_mode(prev);
}

// What INT8 storage costs against exact F32 attention on the original values. Bound: the V error
// alone is at most d/2 = max|v|/254 per element (the output is a convex combination of V rows);
// the K error shifts each score by at most Σ|q|·d_k/2, which moves the softmax weights by a
// few percent at these magnitudes. Stated tolerance: 3% of max|v| (F16: 0.2%).
TEST(AttentionKv, Int8AndF16StorageCloseToF32) {
  ThreadPool pool(2);
  const QkMode prev = attention_qk_mode();
  for (const Shape& c : kShapes) {
    for (KvElem t : {KvElem::F16, KvElem::Q8}) {
      for (QkMode mode : {QkMode::Float, QkMode::Int8}) {
        if (t == KvElem::F16 && mode == QkMode::Int8) continue;
        SCOPED_TRACE(name(c, t) + (mode == QkMode::Int8 ? " int8 q·k" : " float q·k"));
        Kv kv(t, c.pos0 + c.n_q, c.n_head_kv, c.head_dim, 11);
        AttnRun exact(c, 5), got(c, 5);
        kv.bind_f32(exact.a, false);
        attention_ref(exact.a);
        kv.bind(got.a);
        set_attention_qk_mode(mode);
        attention(got.a, pool);
        set_attention_qk_mode(prev);
        const float tol = (t == KvElem::Q8 ? 0.03f : 0.002f) * max_abs(kv.v);
        EXPECT_LE(max_diff(got.out, exact.out), tol);
      }
    }
  }
}

// Int8 q·k: the query is quantized too, so against the Float mode it can only be compared with a
// tolerance; it must still be much closer to the Float mode than the bound above.
TEST(AttentionKv, Int8QkModeCloseToFloatMode) {
  const auto kernels = simd_kernels();
  if (kernels.empty()) GTEST_SKIP() << "no SIMD kernels on this CPU";
  ThreadPool pool(2);
  const QkMode prev = attention_qk_mode();
  for (const auto& [kname, kernel] : kernels) {
    for (const Shape& c : kShapes) {
      SCOPED_TRACE(kname + " " + name(c, KvElem::Q8));
      Kv kv(KvElem::Q8, c.pos0 + c.n_q, c.n_head_kv, c.head_dim, 13);
      AttnRun f(c, 9), i8(c, 9);
      kv.bind(f.a);
      kv.bind(i8.a);
      set_attention_qk_mode(QkMode::Float);
      kernel(f.a, pool);
      set_attention_qk_mode(QkMode::Int8);
      kernel(i8.a, pool);
      set_attention_qk_mode(prev);
      EXPECT_LE(max_diff(f.out, i8.out), 0.01f * max_abs(kv.v));
    }
  }
}

#if defined(__x86_64__)
// The int8 q·k runs in the integer kernel set matmul uses (maddubs, AVX-VNNI or AVX512-VNNI): all
// form the same exact int32 sums, so the outputs are bit-identical; and they match the per-row
// path of the reference (TypedStorageMatchesF32OnStoredValues) on head sizes with and without the
// 8-row blocks (multiples of 16 or not) and key counts with and without a remainder.
TEST(AttentionKv, Int8QkSameInEveryIntegerKernelSet) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2";
  ThreadPool pool(2);
  const QkMode prev = attention_qk_mode();
  set_attention_qk_mode(QkMode::Int8);
  const detail::IntKernels prev_k = detail::matmul_int_kernels();
  for (const Shape& c : kShapes) {
    SCOPED_TRACE(name(c, KvElem::Q8));
    Kv kv(KvElem::Q8, c.pos0 + c.n_q, c.n_head_kv, c.head_dim, 31);
    AttnRun base(c, 33);
    kv.bind(base.a);
    detail::matmul_use_int_kernels(detail::IntKernels::Avx2);
    attention_avx2(base.a, pool);
    for (detail::IntKernels k : {detail::IntKernels::AvxVnni, detail::IntKernels::Avx512Vnni}) {
      if (!detail::matmul_int_kernels_available(k)) continue;
      SCOPED_TRACE(detail::int_kernels_name(k));
      AttnRun r(c, 33);
      kv.bind(r.a);
      detail::matmul_use_int_kernels(k);
      attention_avx2(r.a, pool);
      EXPECT_EQ(r.out, base.out);
    }
  }
  detail::matmul_use_int_kernels(prev_k);
  set_attention_qk_mode(prev);
}
#endif

#if defined(__aarch64__)
// SDOT and the Armv8.0 widening products form the same exact int32 sums: bit-identical outputs.
TEST(AttentionNeon, DotprodAgreesWithPlain) {
  if (!cpu_has_neon_dotprod()) GTEST_SKIP() << "no Armv8.2 SDOT on this CPU (or EDGEVLM_NO_SIMD/NO_DOTPROD set)";
  ThreadPool pool(2);
  const QkMode prev = attention_qk_mode();
  set_attention_qk_mode(QkMode::Int8);
  for (const Shape& c : kShapes) {
    SCOPED_TRACE(name(c, KvElem::Q8));
    Kv kv(KvElem::Q8, c.pos0 + c.n_q, c.n_head_kv, c.head_dim, 19);
    AttnRun p(c, 21), d(c, 21);
    kv.bind(p.a);
    kv.bind(d.a);
    neon_plain(p.a, pool);
    neon_dotprod(d.a, pool);
    EXPECT_EQ(p.out, d.out);
  }
  set_attention_qk_mode(prev);
}

// attention() takes the NEON path (SDOT when present) and never the scalar reference.
TEST(AttentionNeon, DispatchUsesNeon) {
  if (!cpu_has_neon()) GTEST_SKIP() << "EDGEVLM_NO_SIMD set";
  ThreadPool pool(2);
  const QkMode prev = attention_qk_mode();
  set_attention_qk_mode(QkMode::Int8);
  const Shape c{8, 2, 80, 3, 20};
  Kv kv(KvElem::Q8, c.pos0 + c.n_q, c.n_head_kv, c.head_dim, 23);
  AttnRun got(c, 25), want(c, 25), ref(c, 25);
  kv.bind(got.a), kv.bind(want.a), kv.bind(ref.a);
  attention(got.a, pool);
  attention_neon(want.a, pool, cpu_has_neon_dotprod() ? NeonKernels::Dotprod : NeonKernels::Plain);
  attention_ref(ref.a);
  set_attention_qk_mode(prev);
  EXPECT_EQ(got.out, want.out);
  EXPECT_NE(got.out, ref.out);  // the int8 query differs from the reference's F32 one
}

TEST(AttentionNeon, DotprodRefusedWithoutSdot) {
  if (cpu_has_neon_dotprod()) GTEST_SKIP() << "this CPU has SDOT";
  ThreadPool pool(1);
  const Shape c{2, 1, 32, 1, 0};
  Kv kv(KvElem::Q8, 1, 1, 32, 27);
  AttnRun r(c, 29);
  kv.bind(r.a);
  EXPECT_THROW(neon_dotprod(r.a, pool), Error);
}
#endif

TEST(AttentionKv, CausalOverInt8Rows) {
  ThreadPool pool(2);
  const Shape c{8, 2, 80, 6, 20};
  Kv kv(KvElem::Q8, c.pos0 + c.n_q, c.n_head_kv, c.head_dim, 17);
  AttnRun r1(c, 1), r2(c, 1);
  kv.bind(r1.a);
  attention(r1.a, pool);
  // Rewrite the last position with different values: only the last query row may change.
  const int last = c.pos0 + c.n_q - 1, hd = c.head_dim;
  for (int g = 0; g < c.n_head_kv; ++g) {
    const size_t e = (size_t(last) * c.n_head_kv + g) * hd;
    for (int d = 0; d < hd; ++d) kv.k8[e + d] = int8_t(-kv.k8[e + d]), kv.v8[e + d] = int8_t(d % 100);
  }
  kv.bind(r2.a);
  attention(r2.a, pool);
  const int q_dim = c.n_head * hd;
  for (int i = 0; i + 1 < c.n_q; ++i)
    for (int j = 0; j < q_dim; ++j) ASSERT_EQ(r2.out[size_t(i * q_dim + j)], r1.out[size_t(i * q_dim + j)]);
  EXPECT_GT(max_diff(r1.out, r2.out), 0.01f);
}

TEST(AttentionKv, MissingRowsOrScalesAreErrors) {
  ThreadPool pool(1);
  std::vector<float> buf(64);
  std::vector<int8_t> q8(64);
  AttentionArgs a;
  a.q = buf.data(), a.out = buf.data(), a.n_q = 1, a.n_head = 2, a.n_head_kv = 1, a.head_dim = 4;
  a.kv_type = KvElem::Q8;
  a.k_raw = a.v_raw = q8.data();
  EXPECT_THROW(attention(a, pool), Error);  // no scales
  EXPECT_THROW(attention_ref(a), Error);
  a.kv_type = KvElem::F16;
  a.k_raw = nullptr;
  EXPECT_THROW(attention(a, pool), Error);
}

}  // namespace
}  // namespace edgevlm
