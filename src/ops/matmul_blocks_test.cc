#include "ops/matmul_blocks.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/matmul_internal.h"

namespace edgevlm {
namespace {

const GGMLType kTypes[] = {GGMLType::Q4_1, GGMLType::Q5_0, GGMLType::Q5_1, GGMLType::IQ4_NL, GGMLType::Q2_K,
                           GGMLType::Q3_K, GGMLType::Q4_K, GGMLType::Q5_K, GGMLType::Q6_K, GGMLType::IQ4_XS};
const BlockKernels kSets[] = {BlockKernels::Scalar, BlockKernels::Avx2, BlockKernels::Avx512, BlockKernels::Neon,
                              BlockKernels::NeonDotprod};

// Gaussian values with outliers and a few all-negative rows (the min terms' sign), as ggml's
// quantizers write them.
std::vector<float> random_values(int64_t n, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float x = nd(rng);
    if (i % 53 == 7) x *= 8;
    if ((i / 256) % 9 == 4) x = -std::fabs(x) - 0.01f * scale;
    v[size_t(i)] = x;
  }
  return v;
}

struct Weights {
  std::vector<uint8_t> data;
  WeightMatrix w;
};
Weights make_weights(GGMLType t, int64_t n_in, int64_t n_out, uint64_t seed) {
  Weights r;
  const std::vector<float> f = random_values(n_in * n_out, seed, 0.05f);
  const size_t rb = row_bytes(t, n_in);
  r.data.resize(rb * size_t(n_out));
  for (int64_t o = 0; o < n_out; ++o) quantize_row(t, f.data() + o * n_in, r.data.data() + size_t(o) * rb, n_in);
  r.w = WeightMatrix::from_data(t, r.data.data(), n_in, n_out);
  return r;
}

int64_t row_len(GGMLType t, int variant) {
  // Several super-blocks; for the 32-element types also lengths no multiple of 256 (their use).
  const bool k = detail::block_uses_q8k(t);
  return k ? (variant == 0 ? 256 : 768) : (variant == 0 ? 96 : 800);
}

// The scalar reference dot against an independent sum: the dequantized weight row times the
// dequantized activation row, in double. Only float rounding of the scales separates them.
TEST(MatmulBlocks, ScalarDotMatchesDequantizedProduct) {
  for (GGMLType t : kTypes) {
    for (int variant = 0; variant < 2; ++variant) {
      const int64_t n = row_len(t, variant);
      Weights wt = make_weights(t, n, 3, 100 + int(t));
      const std::vector<float> x = random_values(n, 7, 1.0f);
      std::vector<uint8_t> act(detail::block_act_bytes(t, n));
      detail::block_quantize_act(t, x.data(), n, act.data());
      // Dequantized activations: Q8_K through dequantize_row; Act32 by hand (d·q).
      std::vector<float> xa(static_cast<size_t>(n)), wr(static_cast<size_t>(n));
      if (detail::block_uses_q8k(t)) {
        dequantize_row(GGMLType::Q8_K, act.data(), xa.data(), n);
      } else {
        const Act32* b = reinterpret_cast<const Act32*>(act.data());
        for (int64_t i = 0; i < n; ++i) xa[size_t(i)] = b[i / kQK].d * b[i / kQK].qs[i % kQK];
      }
      for (int64_t o = 0; o < 3; ++o) {
        dequantize_row(t, wt.w.data + size_t(o) * wt.w.row_stride, wr.data(), n);
        double want = 0, mag = 0;
        for (int64_t i = 0; i < n; ++i) {
          want += double(wr[size_t(i)]) * xa[size_t(i)];
          mag += std::fabs(double(wr[size_t(i)]) * xa[size_t(i)]);
        }
        const float got = detail::block_dot_scalar(t)(wt.w.data + size_t(o) * wt.w.row_stride, act.data(),
                                                       n / int64_t(type_block_elems(t)));
        EXPECT_NEAR(got, want, 2e-6 * mag + 1e-6) << type_name(t) << " n " << n << " row " << o;
      }
    }
  }
}

// Every kernel set this CPU has against the scalar reference, over odd shapes: n_out not a
// multiple of 8 or 16, one and many activation rows.
TEST(MatmulBlocks, KernelSetsMatchScalarReference) {
  ThreadPool pool(2);
  int sets_run = 0;
  for (BlockKernels k : kSets) {
    if (!block_kernels_available(k) || k == BlockKernels::Scalar) continue;
    ++sets_run;
    for (GGMLType t : kTypes) {
      for (int variant = 0; variant < 2; ++variant) {
        const int64_t n_in = row_len(t, variant);
        for (int64_t n_out : {1, 7, 37}) {
          Weights wt = make_weights(t, n_in, n_out, 1000 + n_out + int(t));
          for (int64_t n_rows : {1, 5, 17}) {
            const std::vector<float> x = random_values(n_in * n_rows, 55 + n_rows, 1.0f);
            std::vector<float> want(size_t(n_out * n_rows)), got(size_t(n_out * n_rows), NAN);
            matmul_blocks(wt.w, x.data(), n_rows, want.data(), pool, BlockKernels::Scalar);
            matmul_blocks(wt.w, x.data(), n_rows, got.data(), pool, k);
            double scale = 0;
            for (float v : want) scale = std::max(scale, double(std::fabs(v)));
            for (size_t i = 0; i < want.size(); ++i) {
              ASSERT_NEAR(got[i], want[i], 1e-5 * scale + 1e-6)
                  << block_kernels_name(k) << " " << type_name(t) << " " << n_out << "x" << n_in << " rows "
                  << n_rows << " at " << i;
            }
          }
        }
      }
    }
  }
  std::printf("kernel sets compared with the scalar reference: %d\n", sets_run);
}

// matmul() runs these types through matmul_blocks, close to the float product of the
// dequantized weights (the difference is the activations' 8-bit quantization), epilogue included.
TEST(MatmulBlocks, MatmulDispatchAndEpilogue) {
  ThreadPool pool(2);
  for (GGMLType t : kTypes) {
    ASSERT_TRUE(matmul_supports(t)) << type_name(t);
    const int64_t n_in = row_len(t, 1), n_out = 21, n_rows = 3;
    Weights wt = make_weights(t, n_in, n_out, 77 + int(t));
    const std::vector<float> x = random_values(n_in * n_rows, 9, 1.0f);
    std::vector<float> ref(size_t(n_out * n_rows)), got(size_t(n_out * n_rows));
    matmul_ref(wt.w, x.data(), n_rows, ref.data());
    matmul(wt.w, x.data(), n_rows, got.data(), pool);
    double err = 0, norm = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      err += (got[i] - ref[i]) * (got[i] - ref[i]);
      norm += ref[i] * ref[i];
    }
    EXPECT_LT(std::sqrt(err / norm), 0.02) << type_name(t);

    // Bias, accumulate and a wider output row.
    const int64_t ldy = n_out + 3;
    std::vector<float> bias(static_cast<size_t>(n_out)), y(static_cast<size_t>(ldy * n_rows), 1.0f);
    for (int64_t o = 0; o < n_out; ++o) bias[size_t(o)] = 0.5f * float(o);
    MatmulOut out;
    out.bias = bias.data();
    out.accumulate = true;
    out.ldy = ldy;
    matmul(wt.w, x.data(), n_rows, y.data(), pool, out);
    for (int64_t r = 0; r < n_rows; ++r) {
      for (int64_t o = 0; o < n_out; ++o)
        EXPECT_FLOAT_EQ(y[size_t(r * ldy + o)], 1.0f + got[size_t(r * n_out + o)] + bias[size_t(o)]) << type_name(t);
      for (int64_t o = n_out; o < ldy; ++o) EXPECT_EQ(y[size_t(r * ldy + o)], 1.0f);
    }
  }
}

// The interleaved Q4_K copy (matmul_blocks_prepare) gives the scalar reference's sums: the same
// integers, only the float additions in another order. Rows 1..9 cover every tile height and the
// remainders; 24 outputs are three groups. Where the CPU lacks the kernel set, prepare declines.
TEST(MatmulBlocks, InterleavedQ4KMatchesScalarReference) {
  ThreadPool pool(2);
  const int64_t n_in = 768, n_out = 24;
  Weights wt = make_weights(GGMLType::Q4_K, n_in, n_out, 4242);
  const bool prepared = matmul_blocks_prepare(wt.w, pool);
  EXPECT_EQ(prepared, block_kernels_available(BlockKernels::Avx2) && detail::q4k_x8_tile_avx2(1) != nullptr);
  if (!prepared) GTEST_SKIP() << "no AVX2: the interleaved Q4_K kernels do not run on this CPU";
  EXPECT_EQ(matmul_blocks_prepared_bytes(), size_t(n_out / 8) * 3 * sizeof(detail::Q4KGroupBlock));
  for (int64_t n_rows = 1; n_rows <= 9; ++n_rows) {
    const std::vector<float> x = random_values(n_in * n_rows, 300 + n_rows, 1.0f);
    std::vector<float> want(size_t(n_out * n_rows)), got(size_t(n_out * n_rows), NAN);
    matmul_blocks(wt.w, x.data(), n_rows, want.data(), pool, BlockKernels::Scalar);
    double scale = 0;
    for (float v : want) scale = std::max(scale, double(std::fabs(v)));
    // Every kernel set with interleaved tiles that this CPU has (Auto: the best).
    for (BlockKernels k : {BlockKernels::Auto, BlockKernels::Avx512, BlockKernels::Avx2}) {
      if (!block_kernels_available(k)) continue;
      std::fill(got.begin(), got.end(), NAN);
      matmul_blocks(wt.w, x.data(), n_rows, got.data(), pool, k);
      for (size_t i = 0; i < want.size(); ++i)
        ASSERT_NEAR(got[i], want[i], 1e-5 * scale + 1e-6) << block_kernels_name(k) << " rows " << n_rows << " at " << i;
    }
  }
  // A matrix whose row count is not a multiple of 8 keeps the row-by-row kernels.
  Weights odd = make_weights(GGMLType::Q4_K, 256, 12, 5);
  EXPECT_FALSE(matmul_blocks_prepare(odd.w, pool));
  matmul_blocks_forget(wt.w.data);
  EXPECT_EQ(matmul_blocks_prepared_bytes(), 0u);
  // After forget, the same product runs the row-by-row kernels on the original.
  const std::vector<float> x = random_values(n_in * 2, 9, 1.0f);
  std::vector<float> want(size_t(n_out * 2)), got(size_t(n_out * 2));
  matmul_blocks(wt.w, x.data(), 2, want.data(), pool, BlockKernels::Scalar);
  matmul(wt.w, x.data(), 2, got.data(), pool);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-3);
}

TEST(MatmulBlocks, RefusesOtherTypesAndMissingSets) {
  ThreadPool pool(1);
  EXPECT_FALSE(matmul_blocks_supports(GGMLType::Q4_0));  // the repacked kernels' type
  EXPECT_FALSE(matmul_supports(GGMLType::Q8_K));
  Weights wt = make_weights(GGMLType::Q4_K, 256, 2, 1);
  std::vector<float> x(256, 1.0f), y(2);
  for (BlockKernels k : kSets) {
    if (block_kernels_available(k)) continue;
    EXPECT_THROW(matmul_blocks(wt.w, x.data(), 1, y.data(), pool, k), Error) << block_kernels_name(k);
  }
}

// The AMX-BF16 products of a prompt's rows (matmul through the default kernels, on CPUs with AMX, for
// the types detail::matmul_amx_converts) against the dequantized weights times the F32 activations in double. Weights and activations are
// rounded to BF16 (error ≤ 2^-8 relative each) and summed in F32: |y − y_ref| ≤ 2.5·2^-8 · Σ|w·x|.
// Shapes: n_out with a partial last half (37), one half short of a panel (16 + 7), row counts with
// one-row tails (17, 33) and two row blocks (600), one and two reduction slices; a single row in a
// PromptRowsScope takes the same kernels.
TEST(MatmulBlocks, AmxBf16MatchesTheDequantizedProduct) {
  if (!detail::matmul_amx_active()) GTEST_SKIP() << "no AMX-BF16 on this CPU (or EDGEVLM_NO_AMX set)";
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    uint64_t seed = 500;
    for (GGMLType t : kTypes) {
      if (!detail::matmul_amx_converts(t)) continue;  // the integer kernels (KernelSetsMatchScalarReference)
      for (const auto& [n_in_variant, n_out, n_rows] : {std::tuple{0, 37, 17}, std::tuple{1, 23, 33},
                                                        std::tuple{1, 64, 600}, std::tuple{0, 40, 1}}) {
        const int64_t n_in = detail::block_uses_q8k(t) ? (n_in_variant ? 2816 : 256) : (n_in_variant ? 800 : 96);
        SCOPED_TRACE(type_name(t) + " " + std::to_string(n_in) + "x" + std::to_string(n_out) + " rows " +
                     std::to_string(n_rows) + " threads " + std::to_string(threads));
        Weights wt = make_weights(t, n_in, n_out, seed++);
        const std::vector<float> x = random_values(n_in * n_rows, seed++, 1.0f);
        std::vector<float> wf(size_t(n_in * n_out)), got(size_t(n_out * n_rows), NAN);
        for (int64_t o = 0; o < n_out; ++o)
          dequantize_row(t, wt.w.data + size_t(o) * wt.w.row_stride, wf.data() + o * n_in, n_in);
        // Q4_K twice: from the file's rows, and (where n_out allows an interleaved copy) from the copy.
        for (bool copy : {false, true}) {
        if (copy && !(t == GGMLType::Q4_K && matmul_blocks_prepare(wt.w, pool))) continue;
        SCOPED_TRACE(copy ? "from the interleaved copy" : "from the rows");
        {
          PromptRowsScope prompt;
          matmul(wt.w, x.data(), n_rows, got.data(), pool);
        }
        double worst = 0;
        for (int64_t r = 0; r < n_rows; ++r)
          for (int64_t o = 0; o < n_out; ++o) {
            double want = 0, mag = 0;
            for (int64_t i = 0; i < n_in; ++i) {
              const double p = double(wf[size_t(o * n_in + i)]) * x[size_t(r * n_in + i)];
              want += p;
              mag += std::fabs(p);
            }
            const double err = std::fabs(got[size_t(r * n_out + o)] - want);
            ASSERT_LE(err, 2.5 / 256 * mag + 1e-6) << "row " << r << " out " << o;
            worst = std::max(worst, err / (mag + 1e-30));
          }
        // Rounding errors of random sign: below the bound, the more so the longer the row (a wrong
        // layout gives errors of order 1).
        EXPECT_LT(worst, n_in < 256 ? 6e-3 : 3e-3);
        if (copy) matmul_blocks_forget(wt.w.data);
        }
      }
    }
  }
}

}  // namespace
}  // namespace edgevlm
