// Matrix-product kernels: the AVX2 path (x86-64; for Q8_0/Q4_0 every integer kernel set the CPU
// has: plain AVX2, AVX-VNNI, AVX512-VNNI, each with one- and two-group tiles, and the cached copy
// in both layouts) and the NEON paths (aarch64: plain Armv8.0 and SDOT, run under qemu-user by
// scripts/test_arm.sh) against the scalar reference for every weight type, odd shapes (row tails,
// partial tiles, sliced reductions, blocked activation rows, decode rows with odd block counts)
// and several thread counts. Tolerances, the same for every SIMD path:
//   F32/F16/BF16: |y − y_ref| ≤ 1e-5 · Σ|w·x| (only the summation order differs);
//   Q8_0/Q4_0 vs the integer result rebuilt in double from the same 8-bit activations:
//     ≤ 1e-5 · Σ|w·x| (exact integer dots, float scales);
//   Q8_0/Q4_0 vs matmul_ref (float activations): the bound that rounding activations to 8 bits
//     implies, Σ_blocks Σ|w| · (max|x_blk| / 254), plus 1e-5 · Σ|w·x|.
#include "ops/matmul.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/pages.h"
#include "ops/cpu_features.h"
#include "ops/matmul_internal.h"
#if defined(__aarch64__)
#include "ops/matmul_neon.h"
#endif

namespace edgevlm {
namespace {

struct Problem {
  GGMLType type;
  int64_t n_in, n_out, n_rows;
  std::vector<uint8_t> wbytes;
  std::vector<float> wdeq;  // dequantized weights [n_out][n_in]
  std::vector<float> x;
  WeightMatrix w() const { return WeightMatrix::from_data(type, wbytes.data(), n_in, n_out); }
};

Problem make_problem(GGMLType t, int64_t n_in, int64_t n_out, int64_t n_rows, uint64_t seed) {
  Problem p{t, n_in, n_out, n_rows, {}, {}, {}};
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> wf(size_t(n_in * n_out));
  for (float& v : wf) v = nd(rng);
  const size_t rb = row_bytes(t, n_in);
  p.wbytes.resize(rb * size_t(n_out));
  p.wdeq.resize(wf.size());
  for (int64_t o = 0; o < n_out; ++o) {
    quantize_row(t, wf.data() + o * n_in, p.wbytes.data() + size_t(o) * rb, n_in);
    dequantize_row(t, p.wbytes.data() + size_t(o) * rb, p.wdeq.data() + o * n_in, n_in);
  }
  p.x.resize(size_t(n_in * n_rows));
  for (float& v : p.x) v = nd(rng) * (1.0f + float(rng() % 4));
  return p;
}

double abs_dot(const Problem& p, int64_t o, int64_t r) {
  double s = 0;
  for (int64_t i = 0; i < p.n_in; ++i) s += std::fabs(double(p.wdeq[size_t(o * p.n_in + i)]) * p.x[size_t(r * p.n_in + i)]);
  return s;
}

// Σ over blocks of Σ|w| · max|x_blk|/254: what 8-bit activations can move a dot product.
double act_quant_bound(const Problem& p, int64_t o, int64_t r) {
  double b = 0;
  for (int64_t k = 0; k < p.n_in; k += 32) {
    double wsum = 0, amax = 0;
    for (int64_t i = k; i < k + 32; ++i) {
      wsum += std::fabs(p.wdeq[size_t(o * p.n_in + i)]);
      amax = std::max(amax, double(std::fabs(p.x[size_t(r * p.n_in + i)])));
    }
    b += wsum * amax / 254.0;
  }
  return b;
}

// The integer kernels' exact result: activations through quantize_act_q8, weights dequantized
// (for Q8_0/Q4_0 each dequantized weight is d·q exactly), products summed in double.
double int8_exact(const Problem& p, int64_t o, int64_t r) {
  std::vector<int8_t> qs(size_t(p.n_in));
  std::vector<float> d(size_t(p.n_in / 32));
  quantize_act_q8(p.x.data() + r * p.n_in, p.n_in, qs.data(), d.data());
  double s = 0;
  for (int64_t i = 0; i < p.n_in; ++i) s += double(p.wdeq[size_t(o * p.n_in + i)]) * d[size_t(i / 32)] * qs[size_t(i)];
  return s;
}

struct Shape {
  int64_t n_in, n_out, n_rows;
};

using Kernel = std::function<void(const WeightMatrix&, const float*, int64_t, float*, ThreadPool&)>;

#if defined(__aarch64__)
void neon_plain(const WeightMatrix& w, const float* x, int64_t n, float* y, ThreadPool& p) {
  matmul_neon(w, x, n, y, p, NeonKernels::Plain);
}
void neon_dotprod(const WeightMatrix& w, const float* x, int64_t n, float* y, ThreadPool& p) {
  matmul_neon(w, x, n, y, p, NeonKernels::Dotprod);
}
void neon_i8mm(const WeightMatrix& w, const float* x, int64_t n, float* y, ThreadPool& p) {
  matmul_neon(w, x, n, y, p, NeonKernels::I8mm);
}
#endif

// The SIMD kernels this CPU can run, by name.
std::vector<std::pair<std::string, Kernel>> simd_kernels() {
  std::vector<std::pair<std::string, Kernel>> k;
  if (cpu_has_avx2()) k.emplace_back("avx2", matmul_avx2);
#if defined(__aarch64__)
  if (cpu_has_neon()) k.emplace_back("neon", neon_plain);
  if (cpu_has_neon_dotprod()) k.emplace_back("neon-dotprod", neon_dotprod);
  if (cpu_has_neon_i8mm()) k.emplace_back("neon-i8mm", neon_i8mm);
#endif
  return k;
}

void check_type(GGMLType t, const std::vector<Shape>& shapes, const Kernel& kernel) {
  const bool quant = t == GGMLType::Q8_0 || t == GGMLType::Q4_0;
  uint64_t seed = 1;
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (const Shape& s : shapes) {
      SCOPED_TRACE(type_name(t) + " n_in=" + std::to_string(s.n_in) + " n_out=" + std::to_string(s.n_out) +
                   " rows=" + std::to_string(s.n_rows) + " threads=" + std::to_string(threads));
      Problem p = make_problem(t, s.n_in, s.n_out, s.n_rows, seed++);
      std::vector<float> ref(size_t(s.n_out * s.n_rows)), got(ref.size(), NAN);
      matmul_ref(p.w(), p.x.data(), s.n_rows, ref.data(), &pool);
      kernel(p.w(), p.x.data(), s.n_rows, got.data(), pool);
      for (int64_t r = 0; r < s.n_rows; ++r)
        for (int64_t o = 0; o < s.n_out; ++o) {
          const size_t i = size_t(r * s.n_out + o);
          const double ad = abs_dot(p, o, r);
          if (quant) {
            ASSERT_NEAR(got[i], int8_exact(p, o, r), 1e-5 * ad + 1e-6) << "row " << r << " out " << o;
            ASSERT_NEAR(got[i], ref[i], act_quant_bound(p, o, r) + 1e-5 * ad) << "row " << r << " out " << o;
          } else {
            ASSERT_NEAR(got[i], ref[i], 1e-5 * ad + 1e-6) << "row " << r << " out " << o;
          }
        }
    }
  }
}

std::vector<Shape> quant_shapes() {
  // Partial tiles of weight rows (n_out % 4) and activation rows (odd), the unpacked-tile path
  // (≥ 4 rows).
  // Group pairs: exact pairs (16, 32 outputs), a pair and a lone group (24, 40), a partial second
  // group (13, 33, 61), each with row remainders 1, 2 and 3 after full tiles of 4 rows.
  return {{32, 1, 1},    {64, 7, 1},    {96, 13, 3},   {256, 33, 5}, {1024, 6, 9},  {160, 5, 4},   {2048, 9, 130},
          {64, 16, 2},   {128, 24, 7},  {96, 40, 6},   {64, 32, 8},  {128, 61, 11}, {2048, 17, 129},
          // 512-bit tiles of 8 activation rows: two full tiles, and one with a remainder of 4.
          {256, 40, 16}, {96, 29, 12},
          // Units of 6 groups (3 pairs): one exactly, two and a lone group, one and 2 pairs + a group.
          {128, 48, 5},  {96, 100, 7},  {64, 88, 3},
          // The integer products' blocking (more than kActBudgetQ bytes of activations): slices of
          // equal length, and two row blocks.
          {4096, 17, 100}, {1024, 24, 400},
          // Decode (one row): odd block counts, and a reduction long enough to be sliced (12289
          // blocks: slices of 45 Q8_0 or 85 Q4_0 blocks, the last one shorter).
          {96, 13, 1},   {160, 17, 1},  {393248, 3, 1}};
}
std::vector<Shape> float_shapes() {
  // Row lengths that are not multiples of 8 exercise the scalar tails; 300 rows × 1024 F32
  // force both reduction slices and activation-row blocks.
  return {{1, 1, 1}, {7, 5, 2}, {37, 9, 3}, {100, 11, 5}, {37, 6, 4}, {256, 17, 1}, {1024, 11, 300}};
}

class MatmulAvx2 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2/FMA/F16C on this CPU (or EDGEVLM_NO_SIMD set)";
  }
};

TEST_F(MatmulAvx2, F32) { check_type(GGMLType::F32, float_shapes(), matmul_avx2); }
TEST_F(MatmulAvx2, F16) { check_type(GGMLType::F16, float_shapes(), matmul_avx2); }
TEST_F(MatmulAvx2, BF16) { check_type(GGMLType::BF16, float_shapes(), matmul_avx2); }
// Runs fn with every integer kernel set this CPU has (plain AVX2, AVX-VNNI, AVX512-VNNI), each
// with every tiling of weight groups it has.
// Every integer kernel set and tiling this CPU has, with the AMX products off (they round the
// activations to BF16, not to 8 bits: MatmulAvx2.AmxBf16 checks them).
void each_int8_variant(const std::function<void()>& fn) {
  using detail::IntKernels;
  struct AmxOff {
    bool was = detail::matmul_amx_enable(false);
    ~AmxOff() { detail::matmul_amx_enable(was); }
  } amx_off;
  for (IntKernels k : {IntKernels::Avx2, IntKernels::AvxVnni, IntKernels::Avx512Vnni}) {
    if (!detail::matmul_int_kernels_available(k)) continue;
    struct Tiling {
      const char* name;
      bool wide, pairs;
      int tile_pairs;  // of the 512-bit tiles, 0 by type (detail::matmul_avx512_tile_pairs)
    };
    const Tiling tilings[] = {{"512-bit tiles by type", true, true, 0},
                              {"512-bit tiles of 3 pairs", true, true, 3},
                              {"512-bit tiles of 2 pairs", true, true, 2},
                              {"group pairs", false, true, 0},
                              {"single groups", false, false, 0}};
    for (const Tiling& tiling : tilings) {
      if (tiling.wide && k != IntKernels::Avx512Vnni) continue;
      SCOPED_TRACE(std::string(detail::int_kernels_name(k)) + ", " + tiling.name);
      const IntKernels was = detail::matmul_use_int_kernels(k);
      const bool was_pairs = detail::matmul_avx2_group_pairs(tiling.pairs);
      const bool was_wide = detail::matmul_avx512_wide_tiles(tiling.wide);
      const int was_tile_pairs = detail::matmul_avx512_tile_pairs(tiling.tile_pairs);
      fn();
      detail::matmul_avx512_tile_pairs(was_tile_pairs);
      detail::matmul_avx512_wide_tiles(was_wide);
      detail::matmul_avx2_group_pairs(was_pairs);
      detail::matmul_use_int_kernels(was);
    }
  }
}

// The kernel sets detected agree with the CPU flags Linux reports, so that a detection that failed
// silently (and left a set's tests above skipped) is caught.
TEST_F(MatmulAvx2, KernelSetsMatchCpuinfo) {
  FILE* f = std::fopen("/proc/cpuinfo", "r");
  if (!f) GTEST_SKIP() << "no /proc/cpuinfo";
  std::string flags;
  char line[8192];
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "flags", 5) == 0) {
      flags = std::string(line) + " ";
      break;
    }
  std::fclose(f);
  if (flags.empty()) GTEST_SKIP() << "no flags line in /proc/cpuinfo";
  for (char& c : flags) if (c == '\t' || c == '\n' || c == ':') c = ' ';
  auto has = [&](const char* flag) { return flags.find(std::string(" ") + flag + " ") != std::string::npos; };
  auto env = [](const char* n) { const char* e = std::getenv(n); return e && *e && std::strcmp(e, "0") != 0; };
  using detail::IntKernels;
  EXPECT_TRUE(detail::matmul_int_kernels_available(IntKernels::Avx2));
  EXPECT_EQ(detail::matmul_int_kernels_available(IntKernels::AvxVnni), has("avx_vnni") && !env("EDGEVLM_NO_VNNI"));
  EXPECT_EQ(detail::matmul_int_kernels_available(IntKernels::Avx512Vnni),
            has("avx512f") && has("avx512bw") && has("avx512vl") && has("avx512_vnni") && !env("EDGEVLM_NO_VNNI") &&
                !env("EDGEVLM_NO_AVX512"));
  // AMX (Linux names its flags only where it supports the tile state, which the engine then asks for).
  EXPECT_EQ(detail::matmul_amx_active(), has("amx_tile") && has("amx_bf16") && has("avx512f") && has("avx512bw") &&
                                             has("avx512vl") && has("avx512_bf16") && !env("EDGEVLM_NO_AMX") &&
                                             !env("EDGEVLM_NO_AVX512"));
}

TEST_F(MatmulAvx2, Q8_0) {
  each_int8_variant([] { check_type(GGMLType::Q8_0, quant_shapes(), matmul_avx2); });
}
TEST_F(MatmulAvx2, Q4_0) {
  each_int8_variant([] { check_type(GGMLType::Q4_0, quant_shapes(), matmul_avx2); });
}

// MatmulOut's epilogue (bias, accumulate, a wider output row) against the plain product of
// the same path followed by the epilogue written out here, on every path this CPU
// runs: the fused Q8_0/Q4_0 kernels (every kernel set; decode, sliced reductions, a lone group, a
// partial group) and the float types' row pass. Columns past n_out of a wider row stay untouched.
void check_epilogue(GGMLType t) {
  const struct { int64_t n_in, n_out, n_rows; } shapes[] = {{64, 40, 1}, {96, 13, 5}, {4096, 24, 100}, {2048, 61, 3}};
  ThreadPool pool(2);
  for (const auto& sh : shapes)
    for (int mode = 0; mode < 4; ++mode) {  // bias; accumulate; accumulate + bias; bias into wider rows
      SCOPED_TRACE(type_name(t) + " " + std::to_string(sh.n_in) + "x" + std::to_string(sh.n_out) + " rows " +
                   std::to_string(sh.n_rows) + " mode " + std::to_string(mode));
      const Problem p = make_problem(t, sh.n_in, sh.n_out, sh.n_rows, 41 + uint64_t(mode));
      const int64_t ldy = mode == 3 ? sh.n_out + 11 : sh.n_out;
      std::vector<float> bias(size_t(sh.n_out)), init(size_t(sh.n_rows * ldy));
      std::mt19937 rng(7);
      std::normal_distribution<float> nd;
      for (float& b : bias) b = nd(rng);
      for (float& v : init) v = nd(rng);
      MatmulOut out;
      out.bias = mode == 1 ? nullptr : bias.data();
      out.accumulate = mode == 1 || mode == 2;
      out.ldy = ldy;
      std::vector<float> plain(size_t(sh.n_rows * sh.n_out)), got = init;
      matmul(p.w(), p.x.data(), sh.n_rows, plain.data(), pool);
      matmul(p.w(), p.x.data(), sh.n_rows, got.data(), pool, out);
      for (int64_t r = 0; r < sh.n_rows; ++r)
        for (int64_t o = 0; o < ldy; ++o) {
          const size_t i = size_t(r * ldy + o);
          if (o >= sh.n_out) {
            ASSERT_EQ(got[i], init[i]) << "row " << r << " column " << o << " past n_out was written";
            continue;
          }
          float want = plain[size_t(r * sh.n_out + o)] + (out.accumulate ? init[i] : 0.0f) + (out.bias ? bias[size_t(o)] : 0.0f);
          // The AMX products sum into the tiles from y's old values (the order differs): F32
          // rounding of the partial sums, a few ulps of Σ|w·x|.
          const double sum_order = 2e-7 * abs_dot(p, o, r);
          ASSERT_NEAR(got[i], want, 1e-5f * (std::fabs(want) + std::fabs(init[i]) + 1.0f) + sum_order)
              << "row " << r << " out " << o;
        }
    }
}

TEST(MatmulEpilogue, EveryTypeAndPath) {
  for (GGMLType t : {GGMLType::F32, GGMLType::F16, GGMLType::Q8_0, GGMLType::Q4_0}) {
    if (cpu_has_avx2() && (t == GGMLType::Q8_0 || t == GGMLType::Q4_0)) each_int8_variant([&] { check_epilogue(t); });
    check_epilogue(t);  // with the AMX products where the CPU has them ({4096, 24, 100} takes them)
  }
  ThreadPool pool(1);
  const Problem p = make_problem(GGMLType::Q8_0, 64, 8, 1, 3);
  std::vector<float> y(8);
  MatmulOut narrow;
  narrow.ldy = 4;
  EXPECT_THROW(matmul(p.w(), p.x.data(), 1, y.data(), pool, narrow), Error);
}

// The AMX-BF16 products (prefill rows of cached Q4_0/Q8_0 matrices on CPUs with AMX) against the
// scalar reference. Activations and weights (q·d) are rounded to BF16 (8 significant bits, error
// ≤ 2^-8 relative each) and summed in F32: |y − y_ref| ≤ 2·2^-8 · Σ|w·x| bounds it (with room
// for F32 sums). Shapes: a pair and a lone group with a 17-row tail (one row in the second
// tile), a panel of one pair, a partial last pair, two row blocks with two reduction slices.
TEST_F(MatmulAvx2, AmxBf16) {
  if (!detail::matmul_amx_active()) GTEST_SKIP() << "no AMX-BF16 on this CPU (or EDGEVLM_NO_AMX set)";
  const struct { GGMLType t; int64_t n_in, n_out, n_rows; } cases[] = {
      {GGMLType::Q4_0, 2048, 40, 17},  {GGMLType::Q8_0, 1024, 48, 33},  {GGMLType::Q4_0, 2048, 61, 100},
      {GGMLType::Q8_0, 2048, 61, 16},  {GGMLType::Q4_0, 1280, 64, 600}, {GGMLType::Q8_0, 4096, 17, 100}};
  const bool was = detail::matmul_packed_enable(true);
  uint64_t seed = 100;
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (const auto& c : cases) {
      SCOPED_TRACE(type_name(c.t) + " " + std::to_string(c.n_in) + "x" + std::to_string(c.n_out) + " rows " +
                   std::to_string(c.n_rows) + " threads " + std::to_string(threads));
      const Problem p = make_problem(c.t, c.n_in, c.n_out, c.n_rows, seed++);
      ASSERT_TRUE(matmul_prepare(p.w(), pool));
      std::vector<float> ref(size_t(c.n_out * c.n_rows)), got(ref.size(), NAN);
      matmul_ref(p.w(), p.x.data(), c.n_rows, ref.data(), &pool);
      matmul_avx2(p.w(), p.x.data(), c.n_rows, got.data(), pool);
      double worst = 0;  // the largest error as a fraction of Σ|w·x|
      for (int64_t r = 0; r < c.n_rows; ++r)
        for (int64_t o = 0; o < c.n_out; ++o) {
          const size_t i = size_t(r * c.n_out + o);
          const double ad = abs_dot(p, o, r);
          ASSERT_NEAR(got[i], ref[i], 2.5 / 256 * ad) << "row " << r << " out " << o;
          worst = std::max(worst, std::fabs(got[i] - ref[i]) / ad);
        }
      // Rounding errors of random sign: far below the bound (a wrong layout gives errors of order 1).
      EXPECT_LT(worst, 2e-3);
      matmul_forget(p.w());
    }
  }
  detail::matmul_packed_enable(was);
}

// MatmulOut::same_x: the previous product's 8-bit quantization of x is reused (a change to x at a
// position the check does not sample goes unseen: that is the reuse), and anything that tells the
// inputs apart (another pointer, shape or weight type, a sampled value) quantizes afresh.
TEST_F(MatmulAvx2, SameXReusesTheQuantization) {
  ThreadPool pool(2);
  for (int64_t rows : {int64_t(1), int64_t(9)}) {
    SCOPED_TRACE("rows " + std::to_string(rows));
    const Problem a = make_problem(GGMLType::Q8_0, 256, 24, rows, 11), b = make_problem(GGMLType::Q8_0, 256, 40, rows, 12);
    const Problem b4 = make_problem(GGMLType::Q4_0, 256, 40, rows, 13);
    const size_t nx = a.x.size();
    std::vector<float> x = a.x, y1(size_t(rows * 24)), fresh(size_t(rows * 40)), got(fresh.size());
    MatmulOut same;
    same.same_x = true;
    auto product_after_a = [&](const Problem& w, const std::vector<float>& xin, const MatmulOut& out) {
      matmul(a.w(), x.data(), rows, y1.data(), pool);
      std::vector<float> y(size_t(rows * w.n_out));
      matmul(w.w(), xin.data(), rows, y.data(), pool, out);
      return y;
    };
    matmul(b.w(), x.data(), rows, fresh.data(), pool);
    EXPECT_EQ(product_after_a(b, x, same), fresh);  // bitwise: the same quantization
    // x changed where the check does not look: the reused quantization does not see it.
    std::vector<float> x2 = x;
    x2[1] += 100.0f;
    std::vector<float> fresh2(fresh.size());
    matmul(b.w(), x2.data(), rows, fresh2.data(), pool);
    ASSERT_NE(fresh2, fresh);
    matmul(a.w(), x.data(), rows, y1.data(), pool);
    const float keep1 = x[1];
    x[1] += 100.0f;  // same buffer, changed behind the kernels' back
    matmul(b.w(), x.data(), rows, got.data(), pool, same);
    EXPECT_EQ(got, fresh) << "same_x did not reuse the quantization";
    x[1] = keep1;
    // Told apart: another buffer with the other values, a sampled value changed, another type.
    EXPECT_EQ(product_after_a(b, x2, same), fresh2);
    for (size_t i : {size_t(0), nx / 2, nx - 1}) {
      std::vector<float> x3 = x, want(fresh.size());
      x3[i] += 50.0f;
      matmul(b.w(), x3.data(), rows, want.data(), pool);
      matmul(a.w(), x.data(), rows, y1.data(), pool);
      const float keep = x[i];
      x[i] += 50.0f;  // in place, at a sampled position
      matmul(b.w(), x.data(), rows, got.data(), pool, same);
      EXPECT_EQ(got, want) << "position " << i;
      x[i] = keep;
    }
    std::vector<float> want4(fresh.size());
    matmul(b4.w(), x.data(), rows, want4.data(), pool);
    EXPECT_EQ(product_after_a(b4, x, same), want4);  // Q4_0's quantization differs from Q8_0's
  }
}

// Matrices of at least detail::kRepackMinBytes go through the cache of repacked weights: decode
// (1 row, an even and an odd number of blocks), a few rows, and a sliced reduction (100 × 4096 bytes exceed kActBudgetQ), with partial 8-row groups (n_out % 8 ≠ 0), both with
// the cache and with per-call repacking.
std::vector<Shape> cached_shapes() {
  return {{2048, 37, 1}, {2080, 61, 1}, {1024, 61, 3}, {4096, 17, 6}, {4096, 11, 100}};
}

TEST_F(MatmulAvx2, RepackedCache) {
  for (GGMLType t : {GGMLType::Q4_0, GGMLType::Q8_0})
    for (int mode : {0, 1, 2}) {  // cache on, cache on with the earlier layout, cache off
      const bool on = mode < 2;
      SCOPED_TRACE(mode == 0 ? "cache on" : mode == 1 ? "cache on, scales in groups" : "cache off");
      detail::matmul_packed_clear();
      const bool was = detail::matmul_packed_enable(on);
      const bool was_split = detail::matmul_avx2_split_scales(mode != 1);
      each_int8_variant([&] { check_type(t, cached_shapes(), matmul_avx2); });
      detail::matmul_avx2_split_scales(was_split);
      detail::matmul_packed_enable(was);
      if (on) {
        EXPECT_GT(detail::matmul_packed_count(), 0u);
        EXPECT_GT(detail::matmul_packed_bytes(), 0u);
      } else {
        EXPECT_EQ(detail::matmul_packed_count(), 0u);
      }
    }
  detail::matmul_packed_clear();
  EXPECT_EQ(detail::matmul_packed_bytes(), 0u);
  // matmul_prepare builds the entry ahead of the first product; small matrices are not cached.
  const bool was = detail::matmul_packed_enable(true);
  ThreadPool pool(2);
  Problem big = make_problem(GGMLType::Q4_0, 2048, 40, 1, 5), small = make_problem(GGMLType::Q4_0, 64, 8, 1, 6);
  EXPECT_TRUE(matmul_prepare(big.w(), pool));
  EXPECT_EQ(detail::matmul_packed_count(), 1u);
  EXPECT_FALSE(matmul_prepare(small.w(), pool));
  std::vector<float> y(40);
  matmul_avx2(big.w(), big.x.data(), 1, y.data(), pool);
  EXPECT_EQ(detail::matmul_packed_count(), 1u);
  for (int64_t o = 0; o < 40; ++o) ASSERT_NEAR(y[size_t(o)], int8_exact(big, o, 0), 1e-5 * abs_dot(big, o, 0) + 1e-6);
  detail::matmul_packed_enable(was);
  detail::matmul_packed_clear();
}

// Weights rewritten in place (as when a freed mapping's address is reused by another file) are
// repacked again, not served from the stale copy; drop forgets one matrix.
TEST_F(MatmulAvx2, RepackedCacheSeesNewData) {
  const bool was = detail::matmul_packed_enable(true);
  detail::matmul_packed_clear();
  ThreadPool pool(2);
  for (GGMLType t : {GGMLType::Q4_0, GGMLType::Q8_0}) {
    Problem p = make_problem(t, 2048, 40, 1, 21);
    Problem p2 = make_problem(t, 2048, 40, 1, 22);
    std::vector<uint8_t> buf = p.wbytes;
    WeightMatrix w = WeightMatrix::from_data(t, buf.data(), 2048, 40);
    std::vector<float> y(40);
    matmul_avx2(w, p.x.data(), 1, y.data(), pool);
    for (int64_t o = 0; o < 40; ++o) ASSERT_NEAR(y[size_t(o)], int8_exact(p, o, 0), 1e-5 * abs_dot(p, o, 0) + 1e-6);
    const size_t bytes = detail::matmul_packed_bytes();
    EXPECT_GE(bytes, buf.size());
    buf = p2.wbytes;  // same address, new weights
    matmul_avx2(w, p.x.data(), 1, y.data(), pool);
    p2.x = p.x;
    for (int64_t o = 0; o < 40; ++o)
      ASSERT_NEAR(y[size_t(o)], int8_exact(p2, o, 0), 1e-5 * abs_dot(p2, o, 0) + 1e-6) << type_name(t);
    EXPECT_EQ(detail::matmul_packed_bytes(), bytes);  // replaced, not added
    detail::matmul_packed_drop(buf.data());
    EXPECT_EQ(detail::matmul_packed_bytes(), 0u);
    // A prepared copy is trusted until matmul_forget (no fingerprint check per product); after
    // forget, new weights at the same address are repacked: products follow the new weights.
    buf = p.wbytes;
    ASSERT_TRUE(matmul_prepare(w, pool));
    matmul_avx2(w, p.x.data(), 1, y.data(), pool);
    for (int64_t o = 0; o < 40; ++o) ASSERT_NEAR(y[size_t(o)], int8_exact(p, o, 0), 1e-5 * abs_dot(p, o, 0) + 1e-6);
    matmul_forget(w);
    EXPECT_EQ(detail::matmul_packed_bytes(), 0u);
    buf = p2.wbytes;
    matmul_avx2(w, p.x.data(), 1, y.data(), pool);
    for (int64_t o = 0; o < 40; ++o)
      ASSERT_NEAR(y[size_t(o)], int8_exact(p2, o, 0), 1e-5 * abs_dot(p2, o, 0) + 1e-6) << type_name(t);
    matmul_forget(w);
    // The same when the whole cache is cleared (the lock-free memo of prepared copies must not
    // hand out a freed copy).
    buf = p.wbytes;
    ASSERT_TRUE(matmul_prepare(w, pool));
    matmul_avx2(w, p.x.data(), 1, y.data(), pool);
    for (int64_t o = 0; o < 40; ++o) ASSERT_NEAR(y[size_t(o)], int8_exact(p, o, 0), 1e-5 * abs_dot(p, o, 0) + 1e-6);
    detail::matmul_packed_clear();
    buf = p2.wbytes;
    matmul_avx2(w, p.x.data(), 1, y.data(), pool);
    for (int64_t o = 0; o < 40; ++o)
      ASSERT_NEAR(y[size_t(o)], int8_exact(p2, o, 0), 1e-5 * abs_dot(p2, o, 0) + 1e-6) << type_name(t);
    matmul_forget(w);
  }
  detail::matmul_packed_enable(was);
}

// The repacked copy replaces the original in memory when the weights are a read-only file
// mapping (as GGUFFile::open maps them): the original's pages are given back, and the products
// are bit for bit those computed while the original stays resident — through the cache, and again
// after the copy is dropped and rebuilt from the pages faulted back in from the file.
TEST_F(MatmulAvx2, RepackReleasesFilePagesSameResults) {
  const bool was = detail::matmul_packed_enable(true);
  ThreadPool pool(2);
  for (GGMLType t : {GGMLType::Q4_0, GGMLType::Q8_0}) {
    SCOPED_TRACE(type_name(t));
    const int64_t n_in = 4096, n_out = 67, n_rows = 6;  // partial 8-row group, sliced reduction
    const Problem p = make_problem(t, n_in, n_out, n_rows, 31);
    const std::string path = ::testing::TempDir() + "edgevlm_matmul_release_" + std::to_string(getpid());
    {
      FILE* f = std::fopen(path.c_str(), "wb");
      ASSERT_NE(f, nullptr);
      ASSERT_EQ(std::fwrite(p.wbytes.data(), 1, p.wbytes.size(), f), p.wbytes.size());
      std::fclose(f);
    }
    const int fd = open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    void* map = mmap(nullptr, p.wbytes.size(), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    std::remove(path.c_str());
    ASSERT_NE(map, MAP_FAILED);
    const WeightMatrix w = WeightMatrix::from_data(t, map, n_in, n_out);
    auto products = [&] {
      std::vector<float> y1(static_cast<size_t>(n_out)), y6(static_cast<size_t>(n_out * n_rows));
      matmul_avx2(w, p.x.data(), 1, y1.data(), pool);
      matmul_avx2(w, p.x.data(), n_rows, y6.data(), pool);
      y1.insert(y1.end(), y6.begin(), y6.end());
      return y1;
    };
    each_int8_variant([&] {
      detail::matmul_packed_clear();
      const bool rel = detail::matmul_release_originals(false);
      const std::vector<float> kept = products();
      detail::matmul_packed_clear();
      detail::matmul_release_originals(true);
      const size_t released0 = detail::matmul_released_bytes();
      const long long resident0 = mapping_resident_bytes(map);
      EXPECT_TRUE(matmul_prepare(w, pool));
      const size_t released = detail::matmul_released_bytes() - released0;
      // All but the partial end pages and the five pages the fingerprint reads.
      EXPECT_GE(released + 7 * 4096, p.wbytes.size());
      if (resident0 >= 0) {
        EXPECT_LE(mapping_resident_bytes(map), resident0 - (long long)released);
      }
      const std::vector<float> a = products();
      matmul_forget(w);  // rebuilt from the pages faulted back in
      const std::vector<float> b = products();
      ASSERT_EQ(a.size(), kept.size());
      EXPECT_EQ(std::memcmp(a.data(), kept.data(), a.size() * sizeof(float)), 0);
      EXPECT_EQ(std::memcmp(b.data(), kept.data(), b.size() * sizeof(float)), 0);
      detail::matmul_release_originals(rel);
    });
    // Memory that is not a read-only file mapping is never released (it would be zeroed).
    detail::matmul_packed_clear();
    const size_t before = detail::matmul_released_bytes();
    EXPECT_TRUE(matmul_prepare(p.w(), pool));
    EXPECT_EQ(detail::matmul_released_bytes(), before);
    munmap(map, p.wbytes.size());
  }
  detail::matmul_packed_clear();
  detail::matmul_packed_enable(was);
}

#if defined(__aarch64__)
class MatmulNeon : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cpu_has_neon()) GTEST_SKIP() << "EDGEVLM_NO_SIMD set";
  }
};
class MatmulNeonDotprod : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cpu_has_neon_dotprod()) GTEST_SKIP() << "no Armv8.2 SDOT on this CPU (or EDGEVLM_NO_SIMD/NO_DOTPROD set)";
  }
};

class MatmulNeonI8mm : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cpu_has_neon_i8mm()) GTEST_SKIP() << "no Armv8.6 I8MM on this CPU (or EDGEVLM_NO_SIMD/NO_I8MM set)";
  }
};

TEST_F(MatmulNeon, F32) { check_type(GGMLType::F32, float_shapes(), neon_plain); }
TEST_F(MatmulNeon, F16) { check_type(GGMLType::F16, float_shapes(), neon_plain); }
TEST_F(MatmulNeon, BF16) { check_type(GGMLType::BF16, float_shapes(), neon_plain); }
TEST_F(MatmulNeon, Q8_0) { check_type(GGMLType::Q8_0, quant_shapes(), neon_plain); }
TEST_F(MatmulNeon, Q4_0) { check_type(GGMLType::Q4_0, quant_shapes(), neon_plain); }
// Only the int8 tiles differ between the variants.
TEST_F(MatmulNeonDotprod, Q8_0) { check_type(GGMLType::Q8_0, quant_shapes(), neon_dotprod); }
TEST_F(MatmulNeonDotprod, Q4_0) { check_type(GGMLType::Q4_0, quant_shapes(), neon_dotprod); }
TEST_F(MatmulNeonI8mm, Q8_0) { check_type(GGMLType::Q8_0, quant_shapes(), neon_i8mm); }
TEST_F(MatmulNeonI8mm, Q4_0) { check_type(GGMLType::Q4_0, quant_shapes(), neon_i8mm); }

// SMMLA sums each block's 32 products in one int32 lane; SDOT in four, converted to float apart:
// the two agree to float rounding, on every tile shape (1-4 weight rows, 1-2 activation rows, the
// unpacked Q4_0 of 4+ rows) and on slices of the reduction.
TEST_F(MatmulNeonI8mm, AgreesWithDotprod) {
  ThreadPool pool(2);
  for (GGMLType t : {GGMLType::Q8_0, GGMLType::Q4_0})
    for (int64_t rows : {1, 2, 3, 5, 8})
      for (int64_t n_out : {1, 2, 3, 7, 10}) {
        Problem p = make_problem(t, 512, n_out, rows, 17);
        std::vector<float> a(size_t(n_out * rows)), b(a.size());
        neon_dotprod(p.w(), p.x.data(), rows, a.data(), pool);
        neon_i8mm(p.w(), p.x.data(), rows, b.data(), pool);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t o = 0; o < n_out; ++o)
            ASSERT_NEAR(a[size_t(r * n_out + o)], b[size_t(r * n_out + o)], 2e-6 * abs_dot(p, o, r))
                << type_name(t) << " rows " << rows << " outputs " << n_out << " out " << o;
      }
}

TEST_F(MatmulNeon, I8mmRefusedWithoutIt) {
  if (cpu_has_neon_i8mm()) GTEST_SKIP() << "this CPU has I8MM";
  ThreadPool pool(1);
  Problem p = make_problem(GGMLType::Q8_0, 32, 1, 2, 13);
  float y[2] = {};
  EXPECT_THROW(neon_i8mm(p.w(), p.x.data(), 2, y, pool), Error);
}

// Both variants sum each block exactly in int32; they differ only in how the int32 lanes split
// the 32 products before the per-lane float multiply-add, so they agree to float rounding.
TEST_F(MatmulNeonDotprod, AgreesWithPlain) {
  ThreadPool pool(2);
  for (GGMLType t : {GGMLType::Q8_0, GGMLType::Q4_0})
    for (int64_t rows : {1, 6}) {
      Problem p = make_problem(t, 512, 10, rows, 11);
      std::vector<float> a(size_t(10 * rows)), b(a.size());
      neon_plain(p.w(), p.x.data(), rows, a.data(), pool);
      neon_dotprod(p.w(), p.x.data(), rows, b.data(), pool);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t o = 0; o < 10; ++o)
          ASSERT_NEAR(a[size_t(r * 10 + o)], b[size_t(r * 10 + o)], 2e-6 * abs_dot(p, o, r))
              << type_name(t) << " rows " << rows << " out " << o;
    }
}

// matmul() takes the NEON path (SMMLA or SDOT when present) and never the scalar reference.
TEST_F(MatmulNeon, DispatchUsesNeon) {
  ThreadPool pool(2);
  Problem p = make_problem(GGMLType::Q4_0, 256, 9, 3, 12);
  std::vector<float> got(27), want(27), ref(27);
  matmul(p.w(), p.x.data(), 3, got.data(), pool);
  matmul_neon(p.w(), p.x.data(), 3, want.data(), pool,
              cpu_has_neon_i8mm() ? NeonKernels::I8mm : cpu_has_neon_dotprod() ? NeonKernels::Dotprod : NeonKernels::Plain);
  matmul_ref(p.w(), p.x.data(), 3, ref.data(), &pool);
  EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)));
  EXPECT_NE(0, std::memcmp(got.data(), ref.data(), got.size() * sizeof(float)));  // 8-bit activations differ
}

TEST_F(MatmulNeon, DotprodRefusedWithoutSdot) {
  if (cpu_has_neon_dotprod()) GTEST_SKIP() << "this CPU has SDOT";
  ThreadPool pool(1);
  Problem p = make_problem(GGMLType::Q8_0, 32, 1, 1, 13);
  float y = 0;
  EXPECT_THROW(neon_dotprod(p.w(), p.x.data(), 1, &y, pool), Error);
}
#endif

// The reference itself against a plain double dot product of the dequantized weights.
TEST(MatmulRef, MatchesDoubleDot) {
  for (GGMLType t : {GGMLType::F32, GGMLType::F16, GGMLType::BF16, GGMLType::Q8_0, GGMLType::Q4_0}) {
    Problem p = make_problem(t, 64, 5, 3, 7);
    std::vector<float> y(15);
    matmul_ref(p.w(), p.x.data(), 3, y.data());
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t o = 0; o < 5; ++o) {
        double s = 0;
        for (int64_t i = 0; i < 64; ++i) s += double(p.wdeq[size_t(o * 64 + i)]) * p.x[size_t(r * 64 + i)];
        EXPECT_NEAR(y[size_t(r * 5 + o)], s, 1e-5 * abs_dot(p, o, r)) << type_name(t);
      }
  }
}

// A hand-built Q4_0 block: checks the nibble order (byte j = element j low, j+16 high) and the
// offset of 8 on every path, with exact small numbers.
TEST(MatmulRef, Q4_0HandBlock) {
  BlockQ4_0 b;
  b.d = f32_to_f16(0.5f);
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t((j & 15) | ((15 - j) << 4));
  std::vector<float> x(32, 0.0f);
  x[1] = 1.0f;   // element 1: low nibble of byte 1 = 1 → 0.5·(1−8) = −3.5
  x[17] = 2.0f;  // element 17: high nibble of byte 1 = 14 → 0.5·(14−8) = 3
  WeightMatrix w = WeightMatrix::from_data(GGMLType::Q4_0, &b, 32, 1);
  float y = 0;
  matmul_ref(w, x.data(), 1, &y);
  EXPECT_FLOAT_EQ(y, -3.5f + 6.0f);
  ThreadPool pool(1);
  for (const auto& [name, kernel] : simd_kernels()) {
    kernel(w, x.data(), 1, &y, pool);
    // Activations in 8 bits: 1.0 · 127/2 = 63.5 rounds to even 64, 2.0 → 127; scale 2/127 in F16.
    const double d = f16_to_f32(f32_to_f16(2.0f / 127));
    EXPECT_NEAR(y, -3.5 * 64 * d + 3.0 * 127 * d, 1e-5) << name;
  }
}

TEST(MatmulApi, FromTensorValidates) {
  GGUFTensorInfo t;
  t.name = "blk.3.ffn_up.weight";
  t.type = GGMLType::Q4_0;
  t.ne = {48, 4};  // not a multiple of 32
  std::vector<uint8_t> buf(1024);
  t.data = buf.data();
  t.nbytes = buf.size();
  try {
    WeightMatrix::from_tensor(t);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.3.ffn_up.weight"), std::string::npos);
  }
  t.type = GGMLType::Q8_K;  // an activation type: no kernel takes it as weights
  t.ne = {256, 2};
  try {
    WeightMatrix::from_tensor(t);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unsupported tensor type q8_k (id 15) in tensor 'blk.3.ffn_up.weight'"),
              std::string::npos) << e.what();
  }
  t.type = GGMLType::Q4_K;
  EXPECT_EQ(WeightMatrix::from_tensor(t).n_out, 2);
  t.type = GGMLType::F32;
  t.ne = {64, 64};  // 16 KiB of F32 from a 1 KiB buffer
  EXPECT_THROW(WeightMatrix::from_tensor(t), Error);
  t.ne = {16, 8};
  EXPECT_EQ(WeightMatrix::from_tensor(t).n_out, 8);
}

}  // namespace
}  // namespace edgevlm
