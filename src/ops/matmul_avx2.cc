// AVX2 + FMA + F16C matrix products (compiled with -mavx2 -mfma -mf16c; run only after
// cpu_has_avx2()).
//
// Q8_0 / Q4_0 weights are repacked into groups of 8 interleaved rows (matmul_internal.h) — once
// into a cache for large matrices (matmul_repack_avx2.cc), else per call into per-thread scratch —
// so one pass over the weights feeds 8 output rows from aligned 32-byte loads and the 8 results
// come out in one register, with no horizontal sums. Three integer kernel sets, chosen at run time:
// AVX2 (maddubs), AVX-VNNI and AVX512-VNNI (vpdpbusd on 256-bit registers, VEX- or EVEX-encoded).
// Activations are quantized to Q8_0 on the fly as ggml does.
// Per thread: for each activation row block (sized to stay in L2), each slice of the reduction,
// each pair of weight groups: tiles of 16 weight rows × up to 4 activation rows (decode: 8 × 1).
//
// F32/F16/BF16 weights: tiles of 4 weight rows × 2 activation rows with horizontal sums; with
// several activation rows a tile's slice of F16/BF16 is first converted to F32 once, then reused.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "ops/matmul.h"
#include "ops/cpu_features.h"
#include "ops/matmul_blocks.h"
#include "ops/matmul_driver.h"
#include "ops/matmul_internal.h"
#include "ops/matmul_repack.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

#include "ops/simd_avx2.h"

namespace edgevlm {
namespace {

constexpr int kRW = 4;  // weight rows per tile
constexpr int kRX = 2;  // activation rows per tile
constexpr int64_t kL2Budget = 160 * 1024;  // bytes of activations kept hot per slice
// The integer products' blocking: 8-bit activations of a row block's slice (in L2), and a unit's
// slice of packed weights (in L1: 40 KiB fits Zen 5's 48 KiB; the 256-bit tiles' units of 2 groups
// take half). The 512-bit tiles choose theirs by type (WideTiling).
constexpr int64_t kActBudgetQ = 384 * 1024;
constexpr int64_t kWeightBudgetQ = 40 * 1024;

using simd::hsum;
using detail::kGR;
using detail::packed_qb;
using detail::kPairScaleBytes;
using detail::pair_super_bytes;
using detail::pair_steps_offset;
using detail::pair_scales_offset;
using detail::pair_qbytes;
using detail::pair_bytes;
using detail::CopyLayout;
using detail::pack_group;
using detail::pack_pair;
using detail::packed_weights;

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

// ---- int8 kernels over repacked groups of 8 weight rows (layout in matmul_internal.h) --------
// A tile is one or two groups × rx activation rows (rx ≤ kRXQ). Per block and activation row, each
// 32-byte weight step meets the 4 activation bytes it pairs with, broadcast to every row's lane;
// the block's integer sums for the 8 rows land in the 8 lanes of one register, then one
// multiply-add by (weight scales × activation scale) accumulates them in float. Q4_0 nibbles
// (0..15) are maddubs' unsigned operand; their offset of 8 enters as the integer −8·Σq_x added
// per block (ActRows::corr). Q8_0 uses the sign trick (maddubs needs one unsigned operand).

template <GGMLType T>
struct PackTraits;
template <>
struct PackTraits<GGMLType::Q4_0> {
  static constexpr int kSteps = 4;  // 32-byte steps per block
  static constexpr int kQB = 128;   // packed quant bytes per block and group
  static constexpr int kBlockBytes = 18;
};
template <>
struct PackTraits<GGMLType::Q8_0> {
  static constexpr int kSteps = 8;
  static constexpr int kQB = 256;
  static constexpr int kBlockBytes = 34;
};

// Bytes between consecutive groups' quants (a multiple of 128) and scales in a cached copy.
// Activation rows quantized to Q8_0: row x, block b at qs + (x·nb + b)·32, scale d[x·nb + b],
// integer correction corr[x·nb + b] (−8·Σq for Q4_0 weights, 0 for Q8_0). Pointers are at the
// first row and first block of the slice.
struct ActRows {
  const int8_t* qs;
  const float* d;
  const int32_t* corr;
  int64_t nb;
};

inline __m256i bcast32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Decode streams the packed weights once, and the hardware prefetcher does most of the work; but it
// stops at each 4 KiB page and has to find the stream again on the next. A software prefetch of
// the first line of the page that starts pf bytes ahead (kPrefetchPageLines) hands it each page
// early. Measured on Zen 5 (bluelm-v-3b decode, 5 alternated runs): 1.45× the tokens/s of
// prefetching every line 4 KiB ahead at 1 thread and 1.27× at 2 (every line had been 10% faster
// than 2 KiB on Zen 4, and prefetching to L2 slower still); 4 or 8 lines of each page were slower
// than 1 or 2, and no software prefetch was 1.3-1.4× slower.
constexpr int kPrefetchBytes = 4096;
constexpr int kPrefetchPageLines = 1;
extern std::atomic<int> g_prefetch_bytes;
extern std::atomic<int> g_prefetch_page_lines;
// A tile about to read n bytes at p of a stream read forward: prefetches the window dist bytes
// ahead, [p + dist, p + dist + n): the first lines of a page starting in it, or (page lines 0)
// every line of it.
inline void prefetch_window(const uint8_t* p, int n, int dist) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p) + uintptr_t(dist);
  const int lines = g_prefetch_page_lines.load(std::memory_order_relaxed);
  if (lines == 0) {
    for (int i = 0; i < n; i += 64) _mm_prefetch(reinterpret_cast<const char*>(a + uintptr_t(i)), _MM_HINT_T0);
    return;
  }
  const uintptr_t page = (a + 4095) & ~uintptr_t(4095);
  if (page < a + uintptr_t(n))
    for (int i = 0; i < lines; ++i) _mm_prefetch(reinterpret_cast<const char*>(page + 64 * uintptr_t(i)), _MM_HINT_T0);
}
// One block of a 256-bit decode tile: its quants (qbytes at q), and its scales (dbytes at d) at the
// same point of the scale stream (pf·dbytes/qbytes bytes ahead).
template <int qbytes, int dbytes = 2 * kGR>
inline void prefetch_ahead(const uint8_t* q, const uint16_t* d) {
  const int pf = g_prefetch_bytes.load(std::memory_order_relaxed);
  if (pf <= 0) return;
  prefetch_window(q, qbytes, pf);
  prefetch_window(reinterpret_cast<const uint8_t*>(d), dbytes, pf / (qbytes / dbytes));
}

inline void store_group(float* y, __m256 v, int rw, bool accumulate) {
  if (rw == kGR) {
    if (accumulate) v = _mm256_add_ps(v, _mm256_loadu_ps(y));
    _mm256_storeu_ps(y, v);
  } else {
    alignas(32) float t[kGR];
    _mm256_store_ps(t, v);
    for (int r = 0; r < rw; ++r) y[r] = accumulate ? y[r] + t[r] : t[r];
  }
}

// A tile is ng groups (8·ng weight rows) × rx activation rows over nblk blocks. Group j's quants
// start at wq + j·qstride bytes and its scales at wd + j·dstride bytes; y row x, group j at
// y + x·ldy + 8j; rw valid outputs in the last group (the others are full). Two groups per tile
// let each activation broadcast feed two weight groups (one broadcast per vpdpbusd instead of one
// each): on Zen 4 the Q4_0 VNNI tiles went from about 53% to 64-67% of vpdpbusd's rate, 1.2×
// (`edgevlm bench --gemm`, both tilings alternated in one process); the maddubs kernels, bound by
// their multiply-add chain rather than the broadcasts, measured the same either way. Accumulators
// are 1-D arrays (GCC keeps them in registers; 2-D arrays went through the stack).
inline const uint8_t* group_at(const void* p, int g, size_t gstride) {
  return static_cast<const uint8_t*>(p) + size_t(g) * gstride;
}
inline __m256 group_scales(const uint16_t* wd, int g, size_t gstride, int64_t ib) {
  const uint16_t* d = reinterpret_cast<const uint16_t*>(group_at(wd, g, gstride)) + ib * kGR;
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d)));
}
template <int ng, int rx>
inline void store_tile_q(float* y, int64_t ldy, const __m256* acc, int rw, bool accumulate) {
  for (int g = 0; g < ng; ++g)
    for (int x = 0; x < rx; ++x) store_group(y + x * ldy + g * kGR, acc[g * rx + x], g == ng - 1 ? rw : kGR, accumulate);
}

// acc += (int32 block sums) · weight scale · activation scale, for every (group, row) of a tile.
template <int ng, int rx>
__attribute__((always_inline)) inline void scale_block_into(__m256* acc, const __m256i* sums, const uint16_t* wd,
                                                            size_t dstride, int64_t ib, const ActRows& a) {
  for (int g = 0; g < ng; ++g) {
    const __m256 dw = group_scales(wd, g, dstride, ib);
    for (int x = 0; x < rx; ++x)
      acc[g * rx + x] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[g * rx + x]),
                                        _mm256_mul_ps(dw, _mm256_set1_ps(a.d[x * a.nb + ib])), acc[g * rx + x]);
  }
}

template <int ng, int rx>
void gemm_q4_0(const uint8_t* wq, const uint16_t* wd, size_t qstride, size_t dstride, int64_t nblk, const ActRows& a, float* y,
               int64_t ldy, int rw, bool accumulate) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[ng * rx];
  for (int i = 0; i < ng * rx; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t ib = 0; ib < nblk; ++ib) {
    if constexpr (rx == 1)
      for (int g = 0; g < ng; ++g)
        prefetch_ahead<128>(group_at(wq, g, qstride) + ib * 128, reinterpret_cast<const uint16_t*>(group_at(wd, g, dstride)) + ib * kGR);
    // Σ over the block of nibble·q_x fits int16: 8 maddubs sums of at most 2·15·127 each.
    __m256i s[ng * rx];
    for (int i = 0; i < ng * rx; ++i) s[i] = _mm256_setzero_si256();
    for (int k = 0; k < 4; ++k) {
      __m256i lo[ng], hi[ng];
      for (int g = 0; g < ng; ++g) {
        const __m256i wv = _mm256_load_si256(reinterpret_cast<const __m256i*>(group_at(wq, g, qstride) + ib * 128 + 32 * k));
        lo[g] = _mm256_and_si256(wv, m4);                          // elements 4k..4k+3
        hi[g] = _mm256_and_si256(_mm256_srli_epi16(wv, 4), m4);  // elements 16+4k..
      }
      for (int x = 0; x < rx; ++x) {
        const int8_t* xq = a.qs + (x * a.nb + ib) * kQK;
        const __m256i xl = bcast32(xq + 4 * k), xh = bcast32(xq + 16 + 4 * k);
        for (int g = 0; g < ng; ++g) {
          __m256i& sv = s[g * rx + x];
          sv = _mm256_add_epi16(sv, _mm256_maddubs_epi16(lo[g], xl));
          sv = _mm256_add_epi16(sv, _mm256_maddubs_epi16(hi[g], xh));
        }
      }
    }
    for (int g = 0; g < ng; ++g)
      for (int x = 0; x < rx; ++x)
        s[g * rx + x] = _mm256_add_epi32(_mm256_madd_epi16(s[g * rx + x], ones), _mm256_set1_epi32(a.corr[x * a.nb + ib]));
    scale_block_into<ng, rx>(acc, s, wd, dstride, ib, a);
  }
  store_tile_q<ng, rx>(y, ldy, acc, rw, accumulate);
}

template <int ng, int rx>
void gemm_q8_0(const uint8_t* wq, const uint16_t* wd, size_t qstride, size_t dstride, int64_t nblk, const ActRows& a, float* y,
               int64_t ldy, int rw, bool accumulate) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[ng * rx];
  for (int i = 0; i < ng * rx; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t ib = 0; ib < nblk; ++ib) {
    if constexpr (rx == 1)
      for (int g = 0; g < ng; ++g)
        prefetch_ahead<256>(group_at(wq, g, qstride) + ib * 256, reinterpret_cast<const uint16_t*>(group_at(wd, g, dstride)) + ib * kGR);
    __m256i s[ng * rx];
    for (int i = 0; i < ng * rx; ++i) s[i] = _mm256_setzero_si256();
    for (int k = 0; k < 8; ++k) {
      __m256i wv[ng], aw[ng];
      for (int g = 0; g < ng; ++g) {
        wv[g] = _mm256_load_si256(reinterpret_cast<const __m256i*>(group_at(wq, g, qstride) + ib * 256 + 32 * k));
        aw[g] = _mm256_sign_epi8(wv[g], wv[g]);
      }
      for (int x = 0; x < rx; ++x) {
        const __m256i xv = bcast32(a.qs + (x * a.nb + ib) * kQK + 4 * k);
        for (int g = 0; g < ng; ++g) {
          // maddubs pairs reach 2·128·127, so each step widens to int32 at once.
          const __m256i p = _mm256_maddubs_epi16(aw[g], _mm256_sign_epi8(xv, wv[g]));
          s[g * rx + x] = _mm256_add_epi32(s[g * rx + x], _mm256_madd_epi16(p, ones));
        }
      }
    }
    scale_block_into<ng, rx>(acc, s, wd, dstride, ib, a);
  }
  store_tile_q<ng, rx>(y, ldy, acc, rw, accumulate);
}

constexpr int kRXQ = 4;  // activation rows per integer tile
constexpr int kNGQ = 2;  // weight groups per integer tile
using GKernel = void (*)(const uint8_t*, const uint16_t*, size_t, size_t, int64_t, const ActRows&, float*, int64_t, int, bool);
#define EV_GEMM_TABLE(k) \
  {{k<1, 1>, k<1, 2>, k<1, 3>, k<1, 4>}, {k<2, 1>, k<2, 2>, k<2, 3>, k<2, 4>}}
const GKernel kGemmQ4_0[kNGQ][kRXQ] = EV_GEMM_TABLE(gemm_q4_0);
const GKernel kGemmQ8_0[kNGQ][kRXQ] = EV_GEMM_TABLE(gemm_q8_0);

// The same tiles with AVX-VNNI (vpdpbusd: u8 × s8 products summed into int32 in one step), for
// CPUs that have it (Zen 4+, Alder Lake+). Each block's sum starts from the activation
// correction: −8·Σq_x for Q4_0 nibbles, −128·Σq_x for Q8_0 stored as q + 128. vpdpbusd's latency
// needs about 8 independent sums in flight: one group × 4 rows keeps two chains per row (even and
// odd steps), two groups one chain per (group, row).
#define EV_VNNI __attribute__((target("avx2,fma,f16c,avxvnni")))
#define EV_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

// A block's int32 sums: chain 0 of each (group, row) starts from the activation correction, the
// optional second chain (at index ng·rx + ...) from zero.
template <int ng, int rx, int nc>
__attribute__((always_inline)) inline void start_chains(__m256i* s, const ActRows& a, int64_t ib) {
  for (int g = 0; g < ng; ++g)
    for (int x = 0; x < rx; ++x) {
      s[g * rx + x] = _mm256_set1_epi32(a.corr[x * a.nb + ib]);
      if constexpr (nc == 2) s[(ng + g) * rx + x] = _mm256_setzero_si256();
    }
}

// Each kernel twice: VEX-encoded (AVX-VNNI) and EVEX-encoded (AVX512-VNNI + AVX512VL, the CPUs
// with AVX-512 but without AVX-VNNI, e.g. Zen 4); the same code, one intrinsic apart.
#define EV_VNNI_TARGET EV_VNNI
#define EV_DPBUSD _mm256_dpbusd_avx_epi32
#define EV_VNNI_FN(name) name##_vnni
#include "ops/matmul_avx2_vnni.inc"
#undef EV_VNNI_TARGET
#undef EV_DPBUSD
#undef EV_VNNI_FN
#define EV_VNNI_TARGET EV_AVX512
#define EV_DPBUSD _mm256_dpbusd_epi32
#define EV_VNNI_FN(name) name##_evex
#include "ops/matmul_avx2_vnni.inc"
#undef EV_VNNI_TARGET
#undef EV_DPBUSD
#undef EV_VNNI_FN

const GKernel kGemmQ4_0Vnni[kNGQ][kRXQ] = EV_GEMM_TABLE(gemm_q4_0_vnni);
const GKernel kGemmQ8_0Vnni[kNGQ][kRXQ] = EV_GEMM_TABLE(gemm_q8_0_vnni);
const GKernel kGemmQ4_0Evex[kNGQ][kRXQ] = EV_GEMM_TABLE(gemm_q4_0_evex);
const GKernel kGemmQ8_0Evex[kNGQ][kRXQ] = EV_GEMM_TABLE(gemm_q8_0_evex);

#include "ops/matmul_avx512_tiles.inc"

std::atomic<int> g_prefetch_bytes{kPrefetchBytes};
std::atomic<int> g_prefetch_page_lines{kPrefetchPageLines};
std::atomic<bool> g_split_scales{true};
std::atomic<int> g_tile_pairs{0};  // 0: by type (WideTiling)

// The 512-bit tiles' pairs per tile, and the unit's weight slice, by type. Measured on Zen 5
// (`edgevlm bench --gemm`, 256 rows, 10 rotated rounds, against 2 pairs in 40 KiB): Q4_0 gains
// from 3 pairs and slices of up to 128 KiB, which L2 serves fast enough (1.03-1.15× on the
// decoder's matrices at 1 thread, in four runs: a 2560-long row in one slice, no second pass over
// the outputs; 0.98-1.02× at 2 threads, 128 rows). Q8_0 keeps 2 pairs in 40 KiB: on the ViT's
// 1152×4304, 3 pairs and longer slices measured between 0.95× and 1.07× from run to run, no
// steady gain. (Two identical settings in one such run differed by up to 1.07×.)
struct WideTiling {
  int pairs;
  int64_t weight_budget;
};
WideTiling wide_tiling(GGMLType t) {
  const int forced = g_tile_pairs.load(std::memory_order_relaxed);
  if (t == GGMLType::Q4_0) return {forced ? forced : 3, forced ? kWeightBudgetQ : 128 * 1024};
  return {forced ? forced : 2, kWeightBudgetQ};
}

// Integer kernel sets this CPU has (EDGEVLM_NO_VNNI=1 leaves only AVX2; EDGEVLM_NO_AVX512=1 drops
// the AVX-512 set).
bool env_flag(const char* name) {
  const char* e = std::getenv(name);
  return e && *e && std::strcmp(e, "0") != 0;
}
bool detect_int_kernels(detail::IntKernels k) {
  __builtin_cpu_init();
  switch (k) {
    case detail::IntKernels::Avx2: return true;
    case detail::IntKernels::AvxVnni: return !env_flag("EDGEVLM_NO_VNNI") && cpu_has_avx_vnni();
    case detail::IntKernels::Avx512Vnni:
      return !env_flag("EDGEVLM_NO_VNNI") && !env_flag("EDGEVLM_NO_AVX512") && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512vnni");
  }
  return false;
}
bool cpu_int_kernels(detail::IntKernels k) {
  static const bool has[3] = {true, detect_int_kernels(detail::IntKernels::AvxVnni),
                              detect_int_kernels(detail::IntKernels::Avx512Vnni)};
  return has[int(k)];
}
detail::IntKernels best_int_kernels() {
  if (cpu_int_kernels(detail::IntKernels::Avx512Vnni)) return detail::IntKernels::Avx512Vnni;
  if (cpu_int_kernels(detail::IntKernels::AvxVnni)) return detail::IntKernels::AvxVnni;
  return detail::IntKernels::Avx2;
}
bool cpu_vnni() { return best_int_kernels() != detail::IntKernels::Avx2; }
std::atomic<int> g_int_kernels{int(best_int_kernels())};
std::atomic<bool> g_group_pairs{true};
std::atomic<bool> g_wide_tiles{true};

// Cached and per-call copies take the pair layout when the Avx512Vnni set runs its 512-bit tiles.
bool use_pair_layout(detail::IntKernels ik, bool split) {
  return split && ik == detail::IntKernels::Avx512Vnni && g_wide_tiles.load(std::memory_order_relaxed) &&
         g_group_pairs.load(std::memory_order_relaxed);
}

// ---- float kernels (F32, F16, BF16 weights; F32 activations) ---------------------------------

inline void store_tile(float* y, int64_t ldy, int x, int r, float v, bool accumulate) {
  float& out = y[x * ldy + r];
  out = accumulate ? out + v : v;
}

struct LoadF32 {
  static __m256 load8(const uint8_t* row, int64_t i) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i);
  }
  static float get(const uint8_t* row, int64_t i) { return reinterpret_cast<const float*>(row)[i]; }
};
struct LoadF16 {
  static __m256 load8(const uint8_t* row, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(row) + i)));
  }
  static float get(const uint8_t* row, int64_t i) { return h2f(reinterpret_cast<const uint16_t*>(row)[i]); }
};
struct LoadBF16 {
  static __m256 load8(const uint8_t* row, int64_t i) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(row) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float get(const uint8_t* row, int64_t i) { return bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[i]); }
};

// Weight rows start at w0 + r·ws, activation rows at x0 + x·ldx, both at the slice's first
// element; klen elements.
template <class L, int rw, int rx>
void tile_float(const uint8_t* w0, size_t ws, const float* x0, int64_t ldx, int64_t klen, float* y,
                int64_t ldy, bool accumulate) {
  __m256 acc[rw][rx];
  for (int r = 0; r < rw; ++r)
    for (int x = 0; x < rx; ++x) acc[r][x] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= klen; i += 8) {
    __m256 wv[rw];
    for (int r = 0; r < rw; ++r) wv[r] = L::load8(w0 + r * ws, i);
    for (int x = 0; x < rx; ++x) {
      __m256 xv = _mm256_loadu_ps(x0 + x * ldx + i);
      for (int r = 0; r < rw; ++r) acc[r][x] = _mm256_fmadd_ps(wv[r], xv, acc[r][x]);
    }
  }
  for (int x = 0; x < rx; ++x)
    for (int r = 0; r < rw; ++r) {
      float v = hsum(acc[r][x]);
      for (int64_t j = i; j < klen; ++j) v += L::get(w0 + r * ws, j) * x0[x * ldx + j];
      store_tile(y, ldy, x, r, v, accumulate);
    }
}

// Converts rw rows × klen elements to F32 (klen a multiple of 8 except possibly the last slice).
template <class L>
void unpack_float(const uint8_t* w0, size_t ws, int rw, int64_t klen, float* out) {
  for (int r = 0; r < rw; ++r) {
    int64_t i = 0;
    for (; i + 8 <= klen; i += 8) _mm256_storeu_ps(out + r * klen + i, L::load8(w0 + r * ws, i));
    for (; i < klen; ++i) out[r * klen + i] = L::get(w0 + r * ws, i);
  }
}

using FKernel = void (*)(const uint8_t*, size_t, const float*, int64_t, int64_t, float*, int64_t, bool);

#define EV_TILE_TABLE(...)                                                         \
  {                                                                                \
    {__VA_ARGS__<1, 1>, __VA_ARGS__<1, 2>}, {__VA_ARGS__<2, 1>, __VA_ARGS__<2, 2>}, \
        {__VA_ARGS__<3, 1>, __VA_ARGS__<3, 2>}, {__VA_ARGS__<4, 1>, __VA_ARGS__<4, 2> } \
  }

template <int rw, int rx>
void tile_f32(const uint8_t* w, size_t ws, const float* x, int64_t ldx, int64_t k, float* y, int64_t ldy, bool acc) {
  tile_float<LoadF32, rw, rx>(w, ws, x, ldx, k, y, ldy, acc);
}
template <int rw, int rx>
void tile_f16(const uint8_t* w, size_t ws, const float* x, int64_t ldx, int64_t k, float* y, int64_t ldy, bool acc) {
  tile_float<LoadF16, rw, rx>(w, ws, x, ldx, k, y, ldy, acc);
}
template <int rw, int rx>
void tile_bf16(const uint8_t* w, size_t ws, const float* x, int64_t ldx, int64_t k, float* y, int64_t ldy, bool acc) {
  tile_float<LoadBF16, rw, rx>(w, ws, x, ldx, k, y, ldy, acc);
}
const FKernel kF32[kRW][kRX] = EV_TILE_TABLE(tile_f32);
const FKernel kF16[kRW][kRX] = EV_TILE_TABLE(tile_f16);
const FKernel kBF16[kRW][kRX] = EV_TILE_TABLE(tile_bf16);

// Same arithmetic as quantize_act_q8 (q = nearest-even(x · 127/amax), scale amax/127 rounded to
// F16), so the integer result can be rebuilt exactly in tests.
// corr[b] = corr_mul · Σq over the block (the weights' offset folded into the integer sum).
void quantize_row_avx2(const float* x, int64_t nb, int8_t* qs, float* d, int32_t* corr, int32_t corr_mul) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * kQK;
    __m256 v[4];
    __m256 mx = _mm256_setzero_ps();
    for (int j = 0; j < 4; ++j) {
      v[j] = _mm256_loadu_ps(xb + 8 * j);
      mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v[j]));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float amax = _mm_cvtss_f32(m);
    const float scale = _cvtsh_ss(_cvtss_sh(amax / 127.0f, _MM_FROUND_TO_NEAREST_INT));
    const float inv = amax != 0 ? 127.0f / amax : 0.0f;
    const __m256 vinv = _mm256_set1_ps(inv);
    __m256i q[4];
    for (int j = 0; j < 4; ++j)
      q[j] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[j], vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    // Pack 32 int32 → 32 int8; packs interleave 128-bit lanes, the permute restores order.
    __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
    __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
    __m256i p = _mm256_packs_epi16(p01, p23);
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_store_si256(reinterpret_cast<__m256i*>(qs + b * kQK), p);
    // Σq: maddubs with ones needs an unsigned operand, so sum via sign-extension instead.
    __m256i lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(p));
    __m256i hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(p, 1));
    __m256i s32 = _mm256_madd_epi16(_mm256_add_epi16(lo, hi), _mm256_set1_epi16(1));
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
    d[b] = scale;
    corr[b] = corr_mul * _mm_cvtsi128_si32(t);
  }
}


// y[i] += b[i] for a unit's n ≤ 4·kGR finished outputs of one row (inline in the tile loop: ops'
// add_bias is an out-of-line scalar loop, called here once per 32 outputs).
inline void add_bias_segment(float* y, const float* b, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(b + i)));
  for (; i < n; ++i) y[i] += b[i];
}

// Q8_0 / Q4_0 weights: activations quantized once per call (per-thread scratch, no allocation in
// steady state), then tiles of up to kNGQ weight groups × up to kRXQ activation rows.
void matmul_quant(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool, const MatmulOut& out) {
  const GGMLType t = w.type;
  const int64_t n_in = w.n_in, n_out = w.n_out, nb = n_in / kQK, ldy = out.ldy ? out.ldy : n_out;
  const auto ik = detail::IntKernels(g_int_kernels.load(std::memory_order_relaxed));
  const bool vnni = ik != detail::IntKernels::Avx2;
  const bool flip = vnni && t == GGMLType::Q8_0;
  const int32_t corr_mul = t == GGMLType::Q4_0 ? -8 : flip ? -128 : 0;
  const bool split = g_split_scales.load(std::memory_order_relaxed);
  // The Avx512Vnni set's 512-bit tiles read the pair layout, and then run every product of the
  // matrix, decode included (the odd last group of a matrix runs the 256-bit tiles).
  const bool pair_layout = use_pair_layout(ik, split);
  const uint8_t* packed = packed_weights(w, flip, split, pair_layout, pool);
  const int qb = packed_qb(t);
  const int64_t n_groups = (n_out + kGR - 1) / kGR;
  const CopyLayout layout{t, nb, n_groups, split, pair_layout};
  // Products of several rows (and every product of a prompt's rows: PromptRowsScope) over the pairs
  // run on the matrix engine where the CPU has one (matmul_amx.cc); an odd last group stays below.
  int64_t g_begin = 0;
  if (packed && pair_layout && (n_rows >= detail::kAmxMinRows || PromptRowsScope::active()) &&
      detail::matmul_amx_active()) {
    const detail::AmxPairs m{t, packed, layout.pair_stride(), n_groups / 2, nb, n_out, flip};
    detail::matmul_amx_pairs(m, x, n_rows, n_in, y, ldy, out.bias, out.accumulate, pool);
    g_begin = 2 * (n_groups / 2);
    if (g_begin == n_groups) return;
  }
  thread_local detail::Scratch<int8_t> qs_buf;
  thread_local detail::Scratch<float> d_buf;
  thread_local detail::Scratch<int32_t> c_buf;
  int8_t* qs = qs_buf.get(size_t(n_rows * n_in));
  float* xd = d_buf.get(size_t(n_rows * nb));
  int32_t* xc = c_buf.get(size_t(n_rows * nb));
  auto quant_rows = [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      quantize_row_avx2(x + r * n_in, nb, qs + r * n_in, xd + r * nb, xc + r * nb, corr_mul);
  };
  // The quantization this thread's scratch holds (MatmulOut::same_x), with three of x's values.
  struct Quantized {
    const float* x = nullptr;
    int64_t n_rows = 0, n_in = 0;
    int32_t corr_mul = 0;
    float first = 0, middle = 0, last = 0;
    bool operator==(const Quantized& o) const {
      return x == o.x && n_rows == o.n_rows && n_in == o.n_in && corr_mul == o.corr_mul &&
             std::memcmp(&first, &o.first, 3 * sizeof(float)) == 0;
    }
  };
  thread_local Quantized held;
  const int64_t n_x = n_rows * n_in;
  const Quantized now{x, n_rows, n_in, corr_mul, x[0], x[n_x / 2], x[n_x - 1]};
  if (!(out.same_x && held == now)) {
    held = {};  // invalid while the scratch is rewritten (an exception may stop it half-way)
    if (n_rows >= 8) pool.parallel_for(n_rows, quant_rows); else quant_rows(0, n_rows);
    held = now;
  }

  // Work units of ngu groups. The 256-bit decode (one row) keeps one group per unit: it streams the
  // weights once, so sharing the one broadcast per step gains nothing, and its prefetch is tuned for
  // one stream. The pair layout runs units of one pair in decode, of 2·tiling.pairs groups × kRXZ
  // rows else.
  const bool pairs = n_rows >= 2 && g_group_pairs.load(std::memory_order_relaxed);
  const GKernel(*wide)[kRXZ] = pair_layout ? (t == GGMLType::Q4_0 ? kGemmQ4_0Z : kGemmQ8_0Z) : nullptr;
  const GKernel wide_decode = t == GGMLType::Q4_0 ? gemv_q4_0_z : gemv_q8_0_z;
  const WideTiling tiling = wide_tiling(t);
  const int ngu = pair_layout ? (n_rows == 1 ? 2 : 2 * tiling.pairs) : pairs ? kNGQ : 1;
  const int rx_step = pair_layout ? kRXZ : kRXQ;
  // Block the product so that a unit's slice of packed weights stays in L1 for every row of a row
  // block, and the row block's slice of activations in L2.
  detail::Blocking blocking{n_rows, n_in};
  if (n_rows * n_in > kActBudgetQ) {
    // Slices as long as a unit's packed weights allow within kWeightBudgetQ (equal lengths), then
    // as many rows as fit the activation budget: every output is then written once per slice.
    // (Slicing for the rows first gave the ViT's 2916 rows slices of 8 blocks, and its outputs
    // went to memory and back 4-5 times per product.) The pair layout's slices start at
    // super-blocks (an even block).
    const int64_t unit_block_bytes = int64_t(ngu) * kGR * (packed_qb(t) / kGR + 2);
    const int64_t budget = pair_layout ? tiling.weight_budget : kWeightBudgetQ;
    const int64_t max_blocks = std::max<int64_t>(1, budget / unit_block_bytes);
    const int64_t n_slices = (nb + max_blocks - 1) / max_blocks;
    int64_t slice_blocks = (nb + n_slices - 1) / n_slices;
    if (pair_layout) slice_blocks += slice_blocks % 2;
    blocking.kslice = slice_blocks * kQK;
    blocking.row_block = std::min(n_rows, std::max<int64_t>(rx_step, kActBudgetQ / blocking.kslice / rx_step * rx_step));
  }
  const GKernel(*tab)[kRXQ] =
      ik == detail::IntKernels::Avx512Vnni ? (t == GGMLType::Q4_0 ? kGemmQ4_0Evex : kGemmQ8_0Evex)
      : ik == detail::IntKernels::AvxVnni  ? (t == GGMLType::Q4_0 ? kGemmQ4_0Vnni : kGemmQ8_0Vnni)
                                           : (t == GGMLType::Q4_0 ? kGemmQ4_0 : kGemmQ8_0);
  const int64_t n_units = (n_groups - g_begin + ngu - 1) / ngu;
  // Per-call repacking into scratch, sgs bytes per group (64-byte aligned): a single group's quants
  // followed by its scales; with the pair layout, a pair (pair_bytes) in two such places.
  const size_t sgs = (size_t(blocking.kslice / kQK + 1) * size_t(qb + 2 * kGR) + 63) / 64 * 64;
  detail::for_each_block(pool, n_units, n_rows, n_in, blocking,
                         [&](int64_t u, int64_t rb0, int64_t rb1, int64_t k0, int64_t k1) {
    thread_local detail::Scratch<uint8_t> pack_buf;
    uint8_t* scratch = packed ? nullptr : pack_buf.get(size_t(ngu) * sgs);
    const int64_t kb0 = k0 / kQK, nblk = (k1 - k0) / kQK;
    const int64_t g = g_begin + u * ngu;
    const int ng = int(std::min<int64_t>(ngu, n_groups - g));
    const int np = pair_layout ? ng / 2 : 0;  // pairs in the unit
    // The unit's pairs (pair p at pq + p·pstride) and its groups outside pairs (group j at
    // q + j·qstride, its scales at d + j·dstride bytes).
    const uint8_t* pq = nullptr;
    size_t pstride = 0;
    const uint8_t* q;
    const uint16_t* d;
    size_t qstride, dstride;
    if (packed) {
      pq = packed + layout.pair_offset(g) + pair_steps_offset(pair_qbytes(t), kb0);  // kb0 is even
      pstride = layout.pair_stride();
      const int64_t gs = g + 2 * np;  // the first group outside a pair
      q = packed + layout.quant_offset(gs) + size_t(kb0) * size_t(qb);
      d = reinterpret_cast<const uint16_t*>(packed + layout.scale_offset(gs)) + kb0 * kGR;
      qstride = layout.next_group_q();
      dstride = layout.next_group_d();
    } else {
      for (int p = 0; p < np; ++p)
        pack_pair(t, w.data, w.row_stride, n_out, g + 2 * p, kb0, nblk, scratch + size_t(2 * p) * sgs, flip);
      for (int j = 2 * np; j < ng; ++j) {
        uint8_t* sq = scratch + size_t(j) * sgs;
        pack_group(t, w.data, w.row_stride, n_out, g + j, kb0, nblk, sq, reinterpret_cast<uint16_t*>(sq + nblk * qb), flip);
      }
      pq = scratch;
      pstride = 2 * sgs;
      q = scratch + size_t(2 * np) * sgs;
      d = reinterpret_cast<const uint16_t*>(q + nblk * qb);
      qstride = dstride = sgs;
    }
    const int rw = int(std::min<int64_t>(kGR, n_out - (g + ng - 1) * kGR));  // outputs in the last group
    const bool acc = k0 > 0 || out.accumulate;
    for (int64_t r0 = rb0; r0 < rb1; r0 += rx_step) {
      const int rx = int(std::min<int64_t>(rx_step, rb1 - r0));
      const int64_t ai = r0 * nb + kb0;
      const ActRows a{qs + ai * kQK, xd + ai, xc + ai, nb};
      float* yt = y + r0 * ldy + g * kGR;
      if (!wide) {
        tab[ng - 1][rx - 1](q, d, qstride, dstride, nblk, a, yt, ldy, rw, acc);
        continue;
      }
      // The unit's group pairs in one 512-bit tile; a last odd group in the 256-bit one.
      if (np > 0)
        (n_rows == 1 ? wide_decode : wide[np - 1][rx - 1])(pq, nullptr, pstride, 0, nblk, a, yt, ldy,
                                                            ng == 2 * np ? rw : kGR, acc);
      if (ng % 2) tab[0][rx - 1](q, d, qstride, dstride, nblk, a, yt + 2 * np * kGR, ldy, rw, acc);
    }
    // The unit's outputs of the row block are final after the last slice, and still in cache.
    if (out.bias && k1 >= n_in) {
      const int64_t o0 = g * kGR, n = std::min<int64_t>(int64_t(ng) * kGR, n_out - o0);
      for (int64_t r = rb0; r < rb1; ++r) add_bias_segment(y + r * ldy + o0, out.bias + o0, n);
    }
  });
}

void matmul_float(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool) {
  const int64_t n_in = w.n_in, n_out = w.n_out;
  // Blocks of rows and slices of the reduction that keep the activations within kL2Budget.
  const detail::Blocking blocking = detail::activation_blocking(n_rows, n_in, 4, kL2Budget, kRX);

  // F16/BF16 weight tiles are converted to F32 once per slice when at least kPackMinRows
  // activation rows will reuse them; decode reads the file's layout directly.
  constexpr int64_t kPackMinRows = 4;
  const GGMLType t = w.type;
  const bool pack = n_rows >= kPackMinRows && (t == GGMLType::F16 || t == GGMLType::BF16);
  const FKernel(*ftab)[kRX] = t == GGMLType::F32 ? kF32 : t == GGMLType::F16 ? kF16 : kBF16;
  const size_t elem_bytes = t == GGMLType::F32 ? 4 : 2;

  // Units of one tile of kRW weight rows.
  detail::for_each_block(pool, (n_out + kRW - 1) / kRW, n_rows, n_in, blocking,
                         [&](int64_t tile, int64_t rb0, int64_t rb1, int64_t k0, int64_t k1) {
    thread_local detail::Scratch<float> scratch_buf;
    float* scratch = pack ? scratch_buf.get(size_t(kRW * blocking.kslice)) : nullptr;
    const int64_t klen = k1 - k0;
    const bool accumulate = k0 > 0;
    const int64_t o0 = tile * kRW;
    const int rw = int(std::min<int64_t>(kRW, n_out - o0));
    const uint8_t* w0 = w.data + size_t(o0) * w.row_stride + size_t(k0) * elem_bytes;
    const uint8_t* wk = w0;
    size_t wks = w.row_stride;
    const FKernel(*tab)[kRX] = ftab;
    if (pack) {
      if (t == GGMLType::F16) unpack_float<LoadF16>(w0, w.row_stride, rw, klen, scratch);
      else unpack_float<LoadBF16>(w0, w.row_stride, rw, klen, scratch);
      wk = reinterpret_cast<const uint8_t*>(scratch);
      wks = size_t(klen) * 4;
      tab = kF32;
    }
    for (int64_t r0 = rb0; r0 < rb1; r0 += kRX) {
      const int rx = int(std::min<int64_t>(kRX, rb1 - r0));
      tab[rw - 1][rx - 1](wk, wks, x + r0 * n_in + k0, n_in, klen, y + r0 * n_out + o0, n_out, accumulate);
    }
  });
}

}  // namespace

namespace detail {
bool matmul_avx2_has_vnni() { return cpu_vnni(); }
bool matmul_avx2_use_vnni(bool on) {
  const auto prev = IntKernels(g_int_kernels.exchange(int(on ? best_int_kernels() : IntKernels::Avx2)));
  return prev != IntKernels::Avx2;
}
bool matmul_int_kernels_available(IntKernels k) { return cpu_int_kernels(k); }
IntKernels matmul_int_kernels() { return IntKernels(g_int_kernels.load()); }
IntKernels matmul_use_int_kernels(IntKernels k) {
  EV_CHECK(cpu_int_kernels(k), "matmul: this CPU lacks the %s integer kernels", int_kernels_name(k));
  return IntKernels(g_int_kernels.exchange(int(k)));
}
int matmul_avx2_prefetch_bytes(int bytes) { return g_prefetch_bytes.exchange(bytes); }
int matmul_avx2_prefetch_page_lines(int lines) { return g_prefetch_page_lines.exchange(lines); }
bool matmul_avx2_split_scales(bool on) { return g_split_scales.exchange(on); }
bool matmul_avx2_group_pairs(bool on) { return g_group_pairs.exchange(on); }
bool matmul_avx512_wide_tiles(bool on) { return g_wide_tiles.exchange(on); }
int matmul_avx512_tile_pairs(int pairs) {
  EV_CHECK(pairs >= 0 && pairs <= kNPZ, "matmul: 512-bit tiles hold 1 to %d pairs, not %d", kNPZ, pairs);
  return g_tile_pairs.exchange(pairs);
}
}  // namespace detail

bool matmul_prepare(const WeightMatrix& w, ThreadPool& pool) {
  // The cache switch (EDGEVLM_NO_REPACK, matmul_packed_enable) covers the block types' copies too.
  if (matmul_blocks_supports(w.type)) return detail::packed_cache_enabled() && matmul_blocks_prepare(w, pool);
  if (!cpu_has_avx2() || (w.type != GGMLType::Q8_0 && w.type != GGMLType::Q4_0)) return false;
  const auto ik = detail::IntKernels(g_int_kernels.load());
  const bool split = g_split_scales.load();
  return packed_weights(w, ik != detail::IntKernels::Avx2 && w.type == GGMLType::Q8_0, split, use_pair_layout(ik, split),
                        pool, /*prepare=*/true) != nullptr;
}

void matmul_forget(const WeightMatrix& w) {
  detail::matmul_packed_drop(w.data);
  matmul_blocks_forget(w.data);
}

void detail::matmul_avx2_out(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool,
                             const MatmulOut& out) {
  EV_CHECK(matmul_supports(w.type), "matmul: unsupported weight type %s", type_name(w.type).c_str());
  if (n_rows <= 0) return;
  if (w.type == GGMLType::Q8_0 || w.type == GGMLType::Q4_0) matmul_quant(w, x, n_rows, y, pool, out);
  else if (out.bias || out.accumulate || (out.ldy && out.ldy != w.n_out)) matmul_unfused(w, x, n_rows, y, pool, out);
  else matmul_float(w, x, n_rows, y, pool);
}

void matmul_avx2(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool) {
  detail::matmul_avx2_out(w, x, n_rows, y, pool, {});
}

}  // namespace edgevlm

#else  // no AVX2 at compile time (another architecture): the dispatcher never calls this.

namespace edgevlm {
namespace detail {
bool matmul_avx2_has_vnni() { return false; }
bool matmul_avx2_use_vnni(bool) { return false; }
bool matmul_int_kernels_available(IntKernels) { return false; }
IntKernels matmul_int_kernels() { return IntKernels::Avx2; }
IntKernels matmul_use_int_kernels(IntKernels) { return IntKernels::Avx2; }
int matmul_avx2_prefetch_bytes(int) { return 0; }
int matmul_avx2_prefetch_page_lines(int) { return 0; }
bool matmul_avx2_split_scales(bool) { return false; }
bool matmul_avx2_group_pairs(bool) { return false; }
bool matmul_avx512_wide_tiles(bool) { return false; }
int matmul_avx512_tile_pairs(int) { return 0; }
}  // namespace detail

bool matmul_prepare(const WeightMatrix&, ThreadPool&) { return false; }
void matmul_forget(const WeightMatrix& w) { matmul_blocks_forget(w.data); }

void detail::matmul_avx2_out(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool,
                             const MatmulOut& out) {
  matmul_unfused(w, x, n_rows, y, pool, out);
}
void matmul_avx2(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool) {
  matmul_ref(w, x, n_rows, y, &pool);
}
}  // namespace edgevlm

#endif
