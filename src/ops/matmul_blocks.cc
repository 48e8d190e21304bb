#include "ops/matmul_blocks.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/pages.h"
#include "ops/cpu_features.h"
#include "ops/matmul_internal.h"

namespace edgevlm {

namespace detail {
namespace {

// ---- scalar reference dots: integer sums per sub-block, scales applied in float -------------

inline int nib(const uint8_t* qs, int j) { return j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4; }
inline int hbit(const uint8_t* qh, int j) {
  uint32_t h;
  std::memcpy(&h, qh, 4);
  return int((h >> j) & 1);
}

float dot_q4_1(const void* w, const void* a, int64_t nb) {
  const BlockQ4_1* b = static_cast<const BlockQ4_1*>(w);
  const Act32* x = static_cast<const Act32*>(a);
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int sumi = 0;
    for (int j = 0; j < kQK; ++j) sumi += nib(b[i].qs, j) * x[i].qs[j];
    s += f16_to_f32(b[i].d) * x[i].d * float(sumi) + f16_to_f32(b[i].m) * x[i].d * float(x[i].sum);
  }
  return s;
}
float dot_q5_0(const void* w, const void* a, int64_t nb) {
  const BlockQ5_0* b = static_cast<const BlockQ5_0*>(w);
  const Act32* x = static_cast<const Act32*>(a);
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int sumi = 0;
    for (int j = 0; j < kQK; ++j) sumi += (nib(b[i].qs, j) | hbit(b[i].qh, j) << 4) * x[i].qs[j];
    s += f16_to_f32(b[i].d) * x[i].d * float(sumi - 16 * x[i].sum);
  }
  return s;
}
float dot_q5_1(const void* w, const void* a, int64_t nb) {
  const BlockQ5_1* b = static_cast<const BlockQ5_1*>(w);
  const Act32* x = static_cast<const Act32*>(a);
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int sumi = 0;
    for (int j = 0; j < kQK; ++j) sumi += (nib(b[i].qs, j) | hbit(b[i].qh, j) << 4) * x[i].qs[j];
    s += f16_to_f32(b[i].d) * x[i].d * float(sumi) + f16_to_f32(b[i].m) * x[i].d * float(x[i].sum);
  }
  return s;
}
float dot_iq4_nl(const void* w, const void* a, int64_t nb) {
  const BlockIQ4_NL* b = static_cast<const BlockIQ4_NL*>(w);
  const Act32* x = static_cast<const Act32*>(a);
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int sumi = 0;
    for (int j = 0; j < kQK; ++j) sumi += kIQ4NLValues[nib(b[i].qs, j)] * x[i].qs[j];
    s += f16_to_f32(b[i].d) * x[i].d * float(sumi);
  }
  return s;
}
float dot_q2_k(const void* w, const void* a, int64_t nb) {
  const BlockQ2_K* b = static_cast<const BlockQ2_K*>(w);
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(a);
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int sumi = 0, summ = 0;
    for (int e = 0; e < kQK_K; ++e) {
      const int q = (b[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
      sumi += (b[i].scales[e / 16] & 0xF) * q * x[i].qs[e];
    }
    for (int j = 0; j < 16; ++j) summ += (b[i].scales[j] >> 4) * x[i].bsums[j];
    s += x[i].d * (f16_to_f32(b[i].d) * float(sumi) - f16_to_f32(b[i].dmin) * float(summ));
  }
  return s;
}
float dot_q3_k(const void* w, const void* a, int64_t nb) {
  const BlockQ3_K* b = static_cast<const BlockQ3_K*>(w);
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(a);
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int8_t sc[16];
    q3k_scales(b[i].scales, sc);
    int sumi = 0;
    for (int e = 0; e < kQK_K; ++e) {
      const int lo = (b[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
      const int hi = (b[i].hmask[e % 32] >> (e / 32)) & 1;
      sumi += sc[e / 16] * (lo - (hi ? 0 : 4)) * x[i].qs[e];
    }
    s += x[i].d * f16_to_f32(b[i].d) * float(sumi);
  }
  return s;
}
template <bool five>
float dot_q45_k(const void* w, const void* a, int64_t nb) {
  using Block = std::conditional_t<five, BlockQ5_K, BlockQ4_K>;
  const Block* b = static_cast<const Block*>(w);
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(a);
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int sumi = 0, summ = 0;
    for (int sb = 0; sb < 8; ++sb) {
      uint8_t sc, m;
      kquant_scale_min(sb, b[i].scales, &sc, &m);
      const uint8_t* q = b[i].qs + 32 * (sb / 2);
      int sub = 0;
      for (int l = 0; l < 32; ++l) {
        int v = (sb & 1) ? q[l] >> 4 : q[l] & 0xF;
        if constexpr (five) v += ((b[i].qh[l] >> sb) & 1) << 4;
        sub += v * x[i].qs[32 * sb + l];
      }
      sumi += sc * sub;
      summ += m * (x[i].bsums[2 * sb] + x[i].bsums[2 * sb + 1]);
    }
    s += x[i].d * (f16_to_f32(b[i].d) * float(sumi) - f16_to_f32(b[i].dmin) * float(summ));
  }
  return s;
}
float dot_q6_k(const void* w, const void* a, int64_t nb) {
  const BlockQ6_K* b = static_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(a);
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int sumi = 0;
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, sb = (e / 32) % 4, l = e % 32;
      const uint8_t ql = b[i].ql[64 * h + 32 * (sb & 1) + l];
      const int q = ((sb < 2 ? ql & 0xF : ql >> 4) | ((b[i].qh[32 * h + l] >> (2 * sb)) & 3) << 4) - 32;
      sumi += b[i].scales[e / 16] * q * x[i].qs[e];
    }
    s += x[i].d * f16_to_f32(b[i].d) * float(sumi);
  }
  return s;
}
float dot_iq4_xs(const void* w, const void* a, int64_t nb) {
  const BlockIQ4_XS* b = static_cast<const BlockIQ4_XS*>(w);
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(a);
  float s = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int sumi = 0;
    for (int sb = 0; sb < 8; ++sb) {
      int sub = 0;
      for (int j = 0; j < 32; ++j) sub += kIQ4NLValues[nib(b[i].qs + 16 * sb, j)] * x[i].qs[32 * sb + j];
      sumi += (iq4xs_scale(b[i], sb) - 32) * sub;
    }
    s += x[i].d * f16_to_f32(b[i].d) * float(sumi);
  }
  return s;
}

}  // namespace

BlockDot block_dot_scalar(GGMLType t) {
  switch (t) {
    case GGMLType::Q4_1: return dot_q4_1;
    case GGMLType::Q5_0: return dot_q5_0;
    case GGMLType::Q5_1: return dot_q5_1;
    case GGMLType::IQ4_NL: return dot_iq4_nl;
    case GGMLType::Q2_K: return dot_q2_k;
    case GGMLType::Q3_K: return dot_q3_k;
    case GGMLType::Q4_K: return dot_q45_k<false>;
    case GGMLType::Q5_K: return dot_q45_k<true>;
    case GGMLType::Q6_K: return dot_q6_k;
    case GGMLType::IQ4_XS: return dot_iq4_xs;
    default: return nullptr;
  }
}

#if !defined(__aarch64__)
BlockDot block_dot_neon(GGMLType) { return nullptr; }
BlockDot block_dot_neon_dotprod(GGMLType) { return nullptr; }
BlockDotRows block_dot4_neon(GGMLType) { return nullptr; }
BlockDotRows block_dot4_neon_dotprod(GGMLType) { return nullptr; }
#endif

BlockDot block_dot(GGMLType t, BlockKernels k) {
  switch (k) {
    case BlockKernels::Avx2: return block_dot_avx2(t);
    case BlockKernels::Avx512: return block_dot_avx512(t) ? block_dot_avx512(t) : block_dot_avx2(t);
    case BlockKernels::Neon: return block_dot_neon(t);
    case BlockKernels::NeonDotprod: return block_dot_neon_dotprod(t);
    default: return block_dot_scalar(t);
  }
}

BlockDotRows block_dot4(GGMLType t, BlockKernels k) {
  switch (k) {
    case BlockKernels::Avx512: return block_dot4_avx512(t) ? block_dot4_avx512(t) : block_dot4_avx2(t);
    case BlockKernels::Avx2: return block_dot4_avx2(t);
    case BlockKernels::Neon: return block_dot4_neon(t);
    case BlockKernels::NeonDotprod: return block_dot4_neon_dotprod(t);
    default: return nullptr;
  }
}

size_t block_act_bytes(GGMLType t, int64_t n) {
  return block_uses_q8k(t) ? size_t(n / kQK_K) * sizeof(BlockQ8_K) : size_t(n / kQK) * sizeof(Act32);
}

void block_quantize_act(GGMLType t, const float* x, int64_t n, void* out) {
  if (block_uses_q8k(t)) {
    quantize_row(GGMLType::Q8_K, x, out, n);
    return;
  }
  Act32* b = static_cast<Act32*>(out);
  for (int64_t i = 0; i < n / kQK; ++i) {
    quantize_act_q8(x + i * kQK, kQK, b[i].qs, &b[i].d);
    int sum = 0;
    for (int j = 0; j < kQK; ++j) sum += b[i].qs[j];
    b[i].sum = sum;
  }
}

}  // namespace detail

bool matmul_blocks_supports(GGMLType t) { return detail::block_dot_scalar(t) != nullptr; }

const char* block_kernels_name(BlockKernels k) {
  switch (k) {
    case BlockKernels::Auto: return "auto";
    case BlockKernels::Scalar: return "scalar";
    case BlockKernels::Avx2: return "avx2";
    case BlockKernels::Avx512: return "avx512";
    case BlockKernels::Neon: return "neon";
    case BlockKernels::NeonDotprod: return "neon-dotprod";
  }
  return "?";
}

bool block_kernels_available(BlockKernels k) {
  switch (k) {
    case BlockKernels::Auto: case BlockKernels::Scalar: return true;
    case BlockKernels::Avx2: return cpu_has_avx2();
    case BlockKernels::Avx512: return detail::matmul_int_kernels_available(detail::IntKernels::Avx512Vnni);
    case BlockKernels::Neon: return cpu_has_neon();
    case BlockKernels::NeonDotprod: return cpu_has_neon_dotprod();
  }
  return false;
}

namespace {
BlockKernels best_block_kernels() {
  if (cpu_has_avx2())
    return detail::matmul_int_kernels() == detail::IntKernels::Avx512Vnni ? BlockKernels::Avx512 : BlockKernels::Avx2;
  if (cpu_has_neon_dotprod()) return BlockKernels::NeonDotprod;
  if (cpu_has_neon()) return BlockKernels::Neon;
  return BlockKernels::Scalar;
}
}  // namespace

// ---- Q4_K rows interleaved 8 at a time ------------------------------------------------------

void detail::pack_q4k_group(const uint8_t* w, size_t row_stride, int64_t n_out, int64_t g, int64_t nb,
                            detail::Q4KGroupBlock* out) {
  std::memset(static_cast<void*>(out), 0, sizeof(detail::Q4KGroupBlock) * size_t(nb));
  for (int r = 0; r < 8; ++r) {
    const int64_t row = 8 * g + r;
    if (row >= n_out) break;
    const BlockQ4_K* q = reinterpret_cast<const BlockQ4_K*>(w + size_t(row) * row_stride);
    for (int64_t i = 0; i < nb; ++i) {
      detail::Q4KGroupBlock& o = out[i];
      for (int p = 0; p < 4; ++p)
        for (int k = 0; k < 8; ++k) std::memcpy(&o.qs[p][k][4 * r], q[i].qs + 32 * p + 4 * k, 4);
      for (int sb = 0; sb < 8; ++sb) kquant_scale_min(sb, q[i].scales, &o.scales[sb][r], &o.mins[sb / 2][r][sb % 2]);
      o.d[r] = q[i].d;
      o.dmin[r] = q[i].dmin;
    }
  }
}

namespace {

struct Q4KCopy {
  HugeBuffer<detail::Q4KGroupBlock> blocks;  // group g's super-blocks at g·nb
  int64_t n_in = 0, n_out = 0, nb = 0;
  size_t bytes = 0;
};
struct Q4KCopies {
  std::mutex mu;
  std::unordered_map<const uint8_t*, std::shared_ptr<const Q4KCopy>> by_data;
  size_t bytes = 0;
};
Q4KCopies& q4k_copies() {
  static Q4KCopies* c = new Q4KCopies();  // never destroyed: products may run during exit
  return *c;
}

std::shared_ptr<const Q4KCopy> find_q4k_copy(const WeightMatrix& w) {
  Q4KCopies& c = q4k_copies();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.by_data.find(w.data);
  if (it == c.by_data.end() || it->second->n_in != w.n_in || it->second->n_out != w.n_out) return nullptr;
  return it->second;
}

}  // namespace

bool matmul_blocks_prepare(const WeightMatrix& w, ThreadPool& pool) {
  const BlockKernels k = best_block_kernels();
  const bool tiles = k == BlockKernels::Avx512 ? detail::q4k_x8_tile_avx512(1) != nullptr
                                               : k == BlockKernels::Avx2 && detail::q4k_x8_tile_avx2(1) != nullptr;
  if (w.type != GGMLType::Q4_K || w.n_out % 8 != 0 || !tiles) return false;
  if (find_q4k_copy(w)) return true;
  auto copy = std::make_shared<Q4KCopy>();
  copy->n_in = w.n_in;
  copy->n_out = w.n_out;
  copy->nb = w.n_in / kQK_K;
  const int64_t groups = w.n_out / 8;
  copy->bytes = sizeof(detail::Q4KGroupBlock) * size_t(groups) * size_t(copy->nb);
  // On 2 MiB pages (decode's TLB misses), without rounding each matrix up to whole huge pages: that
  // cost about a sixth of the file in RSS (1B Q4_K_M: 778 against 674 MB).
  copy->blocks.reset(static_cast<detail::Q4KGroupBlock*>(alloc_huge_bytes_unrounded(copy->bytes)));
  EV_CHECK(copy->blocks != nullptr, "matmul: cannot allocate %zu bytes for an interleaved Q4_K copy", copy->bytes);
  pool.parallel_for(groups, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g)
      detail::pack_q4k_group(w.data, w.row_stride, w.n_out, g, copy->nb, copy->blocks.get() + g * copy->nb);
  });
  {
    Q4KCopies& c = q4k_copies();
    std::lock_guard<std::mutex> lock(c.mu);
    auto& slot = c.by_data[w.data];
    if (slot) c.bytes -= slot->bytes;
    slot = copy;
    c.bytes += copy->bytes;
  }
  release_file_pages(w.data, w.bytes());  // the copy replaces them; read again, they fault back in
  return true;
}

void matmul_blocks_forget(const void* data) {
  Q4KCopies& c = q4k_copies();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.by_data.find(static_cast<const uint8_t*>(data));
  if (it == c.by_data.end()) return;
  c.bytes -= it->second->bytes;
  c.by_data.erase(it);  // a product still running holds its own reference
}

size_t matmul_blocks_prepared_bytes() {
  Q4KCopies& c = q4k_copies();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.bytes;
}

void matmul_blocks(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool,
                   BlockKernels k) {
  EV_CHECK(matmul_blocks_supports(w.type), "matmul: no block kernel for tensor type %s", type_name(w.type).c_str());
  EV_CHECK(block_kernels_available(k), "matmul: kernel set %s is not available on this CPU", block_kernels_name(k));
  if (n_rows <= 0) return;
  // Products of several rows (and every product of a prompt's rows: PromptRowsScope) run on the matrix
  // engine where the CPU has one, as Q4_0/Q8_0 do; a Q4_K matrix's from its interleaved copy where it
  // has one (its rows in the file have been given back).
  if (k == BlockKernels::Auto && (n_rows >= detail::kAmxMinRows || PromptRowsScope::active()) &&
      detail::matmul_amx_active() && detail::matmul_amx_converts(w.type)) {
    const std::shared_ptr<const Q4KCopy> copy = w.type == GGMLType::Q4_K ? find_q4k_copy(w) : nullptr;
    detail::matmul_amx_blocks(w, x, n_rows, y, pool, copy ? copy->blocks.get() : nullptr);
    return;
  }
  if (k == BlockKernels::Auto) k = best_block_kernels();
  detail::BlockDot dot = detail::block_dot(w.type, k);
  if (!dot) dot = detail::block_dot_scalar(w.type);
  const detail::BlockDotRows dot4 = detail::block_dot4(w.type, k);

  // Every activation row quantized once (per-thread scratch of the calling thread: no allocation
  // per product once it is large enough).
  const size_t act_stride = detail::block_act_bytes(w.type, w.n_in);
  thread_local detail::Scratch<uint8_t> act_scratch;
  uint8_t* act = act_scratch.get(act_stride * size_t(n_rows));
  const GGMLType t = w.type;
  const int64_t n_in = w.n_in;
  if (n_rows == 1) {
    detail::block_quantize_act(t, x, n_in, act);
  } else {
    pool.parallel_for(n_rows, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) detail::block_quantize_act(t, x + r * n_in, n_in, act + size_t(r) * act_stride);
    });
  }

  if ((k == BlockKernels::Avx512 || k == BlockKernels::Avx2) && t == GGMLType::Q4_K) {
    if (const std::shared_ptr<const Q4KCopy> copy = find_q4k_copy(w)) {
      // Each group's interleaved super-blocks (about 12 KiB for 2560 inputs) stay in L1 while the
      // activation rows go past.
      const int64_t nbk = copy->nb, groups = w.n_out / 8;
      const detail::Q4KGroupBlock* blocks = copy->blocks.get();
      if (k == BlockKernels::Avx2) {  // one group and two rows per tile (16 registers)
        pool.parallel_for(groups, [&](int64_t g0, int64_t g1) {
          for (int64_t g = g0; g < g1; ++g)
            for (int64_t r = 0; r < n_rows; r += 2)
              detail::q4k_x8_tile_avx2(int(std::min<int64_t>(2, n_rows - r)))(
                  blocks + g * nbk, act + size_t(r) * act_stride, act_stride, nbk, y + r * w.n_out + 8 * g,
                  size_t(w.n_out));
        });
        return;
      }
      // AVX512-VNNI: two groups and four rows per tile (512-bit registers); an odd last group alone.
      // Decode (one row) runs one group per tile: without rows to share them, the 512-bit tiles'
      // joins cost more than they save (`edgevlm bench --gemm --chunk 1`: 0.73× the 256-bit tiles'
      // rate on Zen 5).
      pool.parallel_for((groups + 1) / 2, [&](int64_t u0, int64_t u1) {
        for (int64_t u = u0; u < u1; ++u) {
          const int64_t g = 2 * u;
          for (int64_t r = 0; r < n_rows; r += 4) {
            const int nr = int(std::min<int64_t>(4, n_rows - r));
            const uint8_t* ar = act + size_t(r) * act_stride;
            float* yr = y + r * w.n_out + 8 * g;
            if (g + 1 < groups && n_rows > 1)
              detail::q4k_x16_tile_avx512(nr)(blocks + g * nbk, blocks + (g + 1) * nbk, ar, act_stride, nbk, yr,
                                              size_t(w.n_out));
            else
              for (int64_t h = g; h < std::min(groups, g + 2); ++h)
                detail::q4k_x8_tile_avx512(nr)(blocks + h * nbk, ar, act_stride, nbk, yr + 8 * (h - g), size_t(w.n_out));
          }
        }
      });
      return;
    }
  }

  // Tiles of kTile weight rows against every activation row: the tile's weights (a few KiB a
  // row) stay in L1/L2 while the activations stream past.
  constexpr int64_t kTile = 16;
  const int64_t nb = n_in / int64_t(type_block_elems(t));
  const int64_t n_out = w.n_out;
  const int64_t n_tiles = (n_out + kTile - 1) / kTile;
  pool.parallel_for(n_tiles, [&](int64_t t0, int64_t t1) {
    for (int64_t tile = t0; tile < t1; ++tile) {
      const int64_t o0 = tile * kTile, o1 = std::min(n_out, o0 + kTile);
      int64_t r = 0;
      if (dot4) {
        for (; r + 4 <= n_rows; r += 4) {
          const uint8_t* ar = act + size_t(r) * act_stride;
          for (int64_t o = o0; o < o1; ++o) {
            float v[4];
            dot4(w.data + size_t(o) * w.row_stride, ar, act_stride, nb, v);
            for (int k4 = 0; k4 < 4; ++k4) y[(r + k4) * n_out + o] = v[k4];
          }
        }
      }
      for (; r < n_rows; ++r) {
        const uint8_t* ar = act + size_t(r) * act_stride;
        float* yr = y + r * n_out;
        for (int64_t o = o0; o < o1; ++o) yr[o] = dot(w.data + size_t(o) * w.row_stride, ar, nb);
      }
    }
  });
}

}  // namespace edgevlm
