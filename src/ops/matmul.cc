#include "ops/matmul.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "ops/activations.h"
#include "ops/cpu_features.h"
#include "ops/matmul_blocks.h"
#include "ops/matmul_internal.h"
#if defined(__aarch64__)
#include "ops/matmul_neon.h"
#endif

namespace edgevlm {

namespace {
thread_local bool t_prompt_rows = false;
}  // namespace

PromptRowsScope::PromptRowsScope(bool on) : was_(t_prompt_rows) { t_prompt_rows = on; }
PromptRowsScope::~PromptRowsScope() { t_prompt_rows = was_; }
bool PromptRowsScope::active() { return t_prompt_rows; }

bool matmul_supports(GGMLType t) {
  return t == GGMLType::F32 || t == GGMLType::F16 || t == GGMLType::BF16 || t == GGMLType::Q8_0 ||
         t == GGMLType::Q4_0 || matmul_blocks_supports(t);
}

WeightMatrix WeightMatrix::from_tensor(const GGUFTensorInfo& t) {
  EV_CHECK(t.ne.size() == 2, "tensor '%s' must be 2-D for a matrix product, has %d dimensions",
           t.name.c_str(), int(t.ne.size()));
  EV_CHECK(matmul_supports(t.type), "unsupported tensor type %s (id %u) in tensor '%s' (no matrix-product kernel)",
           type_name(t.type).c_str(), unsigned(t.type), t.name.c_str());
  int64_t be = int64_t(type_block_elems(t.type));
  EV_CHECK(t.ne[0] > 0 && t.ne[1] > 0 && t.ne[0] % be == 0,
           "tensor '%s': row length %lld is not a positive multiple of the %s block size %lld",
           t.name.c_str(), (long long)t.ne[0], type_name(t.type).c_str(), (long long)be);
  WeightMatrix w;
  w.type = t.type;
  w.data = t.data;
  w.n_in = t.ne[0];
  w.n_out = t.ne[1];
  w.row_stride = row_bytes(t.type, t.ne[0]);
  EV_CHECK(t.data != nullptr && w.bytes() <= t.nbytes,
           "tensor '%s': data is smaller than its shape needs", t.name.c_str());
  return w;
}

WeightMatrix WeightMatrix::from_data(GGMLType type, const void* data, int64_t n_in, int64_t n_out) {
  EV_CHECK(matmul_supports(type), "type %s has no matrix-product kernel", type_name(type).c_str());
  EV_CHECK(n_in > 0 && n_out > 0 && n_in % int64_t(type_block_elems(type)) == 0,
           "bad matrix shape %lld x %lld for type %s", (long long)n_out, (long long)n_in,
           type_name(type).c_str());
  WeightMatrix w;
  w.type = type;
  w.data = static_cast<const uint8_t*>(data);
  w.n_in = n_in;
  w.n_out = n_out;
  w.row_stride = row_bytes(type, n_in);
  return w;
}

void quantize_act_q8(const float* x, int64_t n, int8_t* qs, float* d) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* xb = x + b * kQK;
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float inv = amax != 0 ? 127.0f / amax : 0.0f;
    for (int j = 0; j < kQK; ++j) qs[b * kQK + j] = round_to_int8(xb[j] * inv);
    d[b] = f16_to_f32(f32_to_f16(amax / 127.0f));
  }
}

void matmul_ref(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool* pool) {
  EV_CHECK(matmul_supports(w.type), "matmul: unsupported weight type %s", type_name(w.type).c_str());
  auto run = [&](int64_t o_begin, int64_t o_end) {
    std::vector<float> row(size_t(w.n_in));
    for (int64_t o = o_begin; o < o_end; ++o) {
      dequantize_row(w.type, w.data + size_t(o) * w.row_stride, row.data(), w.n_in);
      for (int64_t r = 0; r < n_rows; ++r) {
        const float* xr = x + r * w.n_in;
        // Four partial sums: fewer rounding steps in a row than one running sum.
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int64_t i = 0;
        for (; i + 4 <= w.n_in; i += 4) {
          s0 += row[i] * xr[i];
          s1 += row[i + 1] * xr[i + 1];
          s2 += row[i + 2] * xr[i + 2];
          s3 += row[i + 3] * xr[i + 3];
        }
        for (; i < w.n_in; ++i) s0 += row[i] * xr[i];
        y[r * w.n_out + o] = (s0 + s1) + (s2 + s3);
      }
    }
  };
  if (pool) {
    pool->parallel_for(w.n_out, run);
  } else {
    run(0, w.n_out);
  }
}

void matmul(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool) {
  if (n_rows <= 0) return;
  if (matmul_blocks_supports(w.type)) {
    matmul_blocks(w, x, n_rows, y, pool);  // K-quants, IQ4 and the 32-element fallbacks
  } else if (cpu_has_avx2()) {
    matmul_avx2(w, x, n_rows, y, pool);
#if defined(__aarch64__)
  } else if (cpu_has_neon()) {
    matmul_neon(w, x, n_rows, y, pool);  // SDOT tiles when the CPU has them
#endif
  } else {
    matmul_ref(w, x, n_rows, y, &pool);
  }
}

void matmul(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool, const MatmulOut& out) {
  if (n_rows <= 0) return;
  EV_CHECK(out.ldy == 0 || out.ldy >= w.n_out, "matmul: output row stride %lld is below the %lld outputs",
           (long long)out.ldy, (long long)w.n_out);
  if (cpu_has_avx2() && !matmul_blocks_supports(w.type)) detail::matmul_avx2_out(w, x, n_rows, y, pool, out);
  else detail::matmul_unfused(w, x, n_rows, y, pool, out);
}

namespace detail {

void matmul_unfused(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool,
                    const MatmulOut& out) {
  const int64_t n_out = w.n_out, ldy = out.ldy ? out.ldy : n_out;
  const bool in_place = ldy == n_out && !out.accumulate;
  std::vector<float> tmp(in_place ? 0 : size_t(n_rows * n_out));
  float* prod = in_place ? y : tmp.data();
  matmul(w, x, n_rows, prod, pool);
  pool.parallel_for(n_rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* yr = y + r * ldy;
      if (!in_place) {
        const float* pr = prod + r * n_out;
        if (out.accumulate) add_inplace(yr, pr, n_out);
        else std::copy(pr, pr + n_out, yr);
      }
      if (out.bias) add_bias(yr, out.bias, n_out, 1);
    }
  });
}

}  // namespace detail
}  // namespace edgevlm
