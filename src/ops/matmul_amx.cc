// AMX-BF16 products of several activation rows (prefill, the ViT) for Q4_0 / Q8_0 weights, on
// CPUs with Intel's matrix engine (Sapphire Rapids and later; cpu_has_amx_bf16). Compiled with
// -mamx-tile -mamx-bf16 -mavx512bf16; tile configurations load through amx_load_config
// (matmul_internal.h), since GCC 12 deletes the stores that fill them before _tile_loadconfig.
//
// Why BF16 and not AMX-INT8: an int8 tile product covers one 32-element block (one weight scale
// and one activation scale per block), so every block's int32 tile has to be stored and scaled
// with AVX-512 before the next; measured here (Xeon, one core) that ran at 215-230 G MAC/s, no
// faster than the AVX512-VNNI tiles (180-210). In BF16 the scales are applied once, while a
// weight panel is converted, and the tiles accumulate in F32 over the whole reduction: 1.5-1.7 T
// MAC/s from L1, and the products below reach a large part of it. The activations are rounded to
// BF16 (8 significant bits, error ≤ 2^-8 relative) instead of Q8_0 blocks (error up to max|x|/254
// per element), so these products are closer to F32 than the integer path's.
//
// Layout. Activations: a row block's rows in chunks of 32 (two 16-row tiles), per 32-element step
// 2 KiB: rows 0-15 then 16-31, each row's 32 BF16 values in order. Weights: the cached pair layout
// of the integer kernels (matmul_internal.h), converted per panel of two pairs (32 output rows)
// and reduction slice into the B tiles' form, per step 2 KiB: pair 0 then pair 1, tile row r
// holding elements 2r and 2r+1 of each of the 16 weight rows, times the block's scale.
// Per thread: a range of panels; per reduction slice (the row block's activations of the slice
// stay in L2) and panel, every 32-row chunk: 4 tile products per step into 4 F32 accumulator tiles,
// which load from and store to y between slices; meanwhile the vector units convert the next
// panel's slice of weights (PanelConversion), once per row block.
// Tails (rows or outputs short of a tile) run with a tile configuration of that shape.
#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/error.h"
#include "ops/cpu_features.h"
#include "ops/matmul_blocks.h"
#include "ops/matmul_internal.h"

namespace edgevlm::detail {
namespace {
std::atomic<bool> g_amx_enabled{true};
}  // namespace
bool matmul_amx_enable(bool on) { return g_amx_enabled.exchange(on); }
bool matmul_amx_active() {
  return g_amx_enabled.load(std::memory_order_relaxed) && matmul_amx_compiled() && cpu_has_amx_bf16();
}
}  // namespace edgevlm::detail

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__) && defined(__AVX512BW__)
#include <immintrin.h>

namespace edgevlm::detail {
namespace {

// The maskz forms with a full mask compile to the plain instructions; the plain intrinsics' undefined
// pass-through operand trips GCC 12's -Wmaybe-uninitialized.
constexpr __mmask16 kAll16 = 0xFFFF;
constexpr int kChunkRows = 32;          // activation rows per chunk (two tiles)
constexpr int kStepElems = 1024;        // BF16 values per step of a chunk or a panel (two tiles)
constexpr int kTileElems = 512;         // one tile: 16 rows × 32 BF16
constexpr int64_t kRowBlock = 512;      // rows converted at once (the activation buffer's size)
constexpr int64_t kSliceBudget = 1 << 20;  // bytes of the row block's activations per slice (L2)

// A tile shape: rows of the two activation tiles, outputs of the two weight tiles (0: unused).
// Tiles 0-3 accumulate (activation tile i, weight tile j at 2i + j), 4-5 hold activations, 6-7
// weights.
struct TileShape {
  int r0 = -1, r1 = -1, n0 = -1, n1 = -1;
  bool operator==(const TileShape& o) const { return r0 == o.r0 && r1 == o.r1 && n0 == o.n0 && n1 == o.n1; }
};

thread_local TileShape t_shape;

void use_shape(const TileShape& s) {
  if (t_shape == s) return;
  AmxTileConfig c;
  const int rows[2] = {s.r0, s.r1}, cols[2] = {s.n0, s.n1};
  for (int i = 0; i < 2; ++i) {
    if (rows[i] <= 0) continue;
    c.rows[4 + i] = uint8_t(rows[i]);
    c.colsb[4 + i] = 64;
    for (int j = 0; j < 2; ++j)
      if (cols[j] > 0) {
        c.rows[2 * i + j] = uint8_t(rows[i]);
        c.colsb[2 * i + j] = uint16_t(4 * cols[j]);
      }
  }
  for (int j = 0; j < 2; ++j)
    if (cols[j] > 0) {
      c.rows[6 + j] = 16;
      c.colsb[6 + j] = uint16_t(4 * cols[j]);
    }
  amx_load_config(c);
  t_shape = s;
}

// 64 signed 8-bit weights, 4 consecutive elements (4q..4q+3) of each of 16 weight rows, into tile
// rows 2q and 2q + 1 at out (BF16, times the rows' scales: slo for rows 0-7 and shi for rows
// 8-15, each scale twice in a row).
inline void quad_to_rows(__m512i q, __m512 slo, __m512 shi, uint16_t* out) {
  // Words 2n (elements 4q, 4q + 1 of row n) to the low half, words 2n + 1 to the high half.
  const __m512i idx = _mm512_set_epi16(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1,  //
                                       30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i t = _mm512_maskz_permutexvar_epi16(~__mmask32(0), idx, q);
  for (int h = 0; h < 2; ++h) {
    const __m256i half = h ? _mm512_maskz_extracti64x4_epi64(0xFF, t, 1) : _mm512_maskz_extracti64x4_epi64(0xFF, t, 0);
    const __m512 f0 = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(kAll16, _mm512_maskz_cvtepi8_epi32(kAll16, _mm256_castsi256_si128(half))), slo);
    const __m512 f1 = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(kAll16, _mm512_maskz_cvtepi8_epi32(kAll16, _mm256_extracti128_si256(half, 1))), shi);
    const __m512bh r = _mm512_cvtne2ps_pbh(f1, f0);
    _mm512_store_si512(out + h * 32, reinterpret_cast<const __m512i&>(r));
  }
}

// Block ib of the pair at w into one B tile at out (16 rows × 32 BF16).
void convert_block(const AmxPairs& m, const uint8_t* w, int64_t ib, uint16_t* out) {
  const int pq = pair_qbytes(m.type);
  const uint8_t* q = w + pair_steps_offset(pq, ib);
  const __m512 d = _mm512_maskz_cvtph_ps(kAll16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + pair_scales_offset(pq, ib))));
  const __m512 slo = _mm512_maskz_permutexvar_ps(kAll16, _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0), d);
  const __m512 shi = _mm512_maskz_permutexvar_ps(kAll16, _mm512_set_epi32(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8), d);
  if (m.type == GGMLType::Q4_0) {
    // Step k: low nibbles are elements 4k..4k+3, high nibbles 16+4k..16+4k+3 (offset 8).
    const __m512i m4 = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
    for (int k = 0; k < 4; ++k) {
      const __m512i v = _mm512_load_si512(q + 64 * k);
      quad_to_rows(_mm512_sub_epi8(_mm512_and_si512(v, m4), eight), slo, shi, out + 2 * k * 32);
      quad_to_rows(_mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4), eight), slo, shi, out + 2 * (4 + k) * 32);
    }
  } else {  // Q8_0, stored as q + 128 when flipped
    const __m512i flip = _mm512_set1_epi8(m.flip ? char(0x80) : 0);
    for (int k = 0; k < 8; ++k)
      quad_to_rows(_mm512_xor_si512(_mm512_load_si512(q + 64 * k), flip), slo, shi, out + 2 * k * 32);
  }
}

// Where a panel's weights come from, in halves of 16 weight rows (the two B tiles of a step): the
// integer kernels' cached pair layout (Q4_0 / Q8_0, one pair a half, one block a step), or a block
// type's rows as they lie in the file (K-quants, IQ4, the 32-element types: one block, of one to
// eight steps, of each of the half's rows dequantized at a time).
struct PanelSource {
  int64_t n_out = 0, steps = 0, n_halves = 0;
  int steps_per_unit = 1;            // reduction steps of 32 one conversion unit covers
  const AmxPairs* pairs = nullptr;   // the pair layout, or else:
  GGMLType type = GGMLType::F32;     // the file's rows
  const uint8_t* data = nullptr;
  size_t row_stride = 0, block_bytes = 0;
  const Q4KGroupBlock* q4k = nullptr;  // or a Q4_K matrix's interleaved copy (nb blocks a group of 8 rows)

  const uint8_t* half(int64_t h) const {
    if (pairs) return pairs->data + size_t(h) * pairs->pstride;
    if (q4k) return reinterpret_cast<const uint8_t*>(q4k + 2 * h * steps / 8);
    return data + size_t(16 * h) * row_stride;
  }
  int half_rows(int64_t h) const { return int(std::min<int64_t>(16, n_out - 16 * h)); }
};

// 32 signed 8-bit values (two sub-blocks of 16) to F32 at out: out[i] = q[i]·s0 − m0 for i < 16, then
// q[i]·s1 − m1.
inline void store_q32(__m256i q, float s0, float m0, float s1, float m1, float* out) {
  const __m512 a = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
  const __m512 b = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)));
  _mm512_storeu_ps(out, _mm512_fmsub_ps(a, _mm512_set1_ps(s0), _mm512_set1_ps(m0)));
  _mm512_storeu_ps(out + 16, _mm512_fmsub_ps(b, _mm512_set1_ps(s1), _mm512_set1_ps(m1)));
}

// One super-block of 256 to F32, vectorized (the layouts: formats/quant.h); false for a type
// without a vectorized form here (dequantize_row then does it).
bool dequant_superblock(GGMLType t, const uint8_t* src, float* out) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
  switch (t) {
    case GGMLType::Q6_K: {
      const auto* b = reinterpret_cast<const BlockQ6_K*>(src);
      const float d = f16_to_f32(b->d);
      for (int h = 0; h < 2; ++h) {
        const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->ql + 64 * h));
        const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->ql + 64 * h + 32));
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qh + 32 * h));
        for (int sb = 0; sb < 4; ++sb) {
          const __m256i ql = sb & 1 ? ql1 : ql0;
          const __m256i lo = _mm256_and_si256(sb < 2 ? ql : _mm256_srli_epi16(ql, 4), m4);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * sb), m2);
          const __m256i q = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)), _mm256_set1_epi8(32));
          const int si = 8 * h + 2 * sb;
          store_q32(q, d * b->scales[si], 0.0f, d * b->scales[si + 1], 0.0f, out + 128 * h + 32 * sb);
        }
      }
      return true;
    }
    case GGMLType::IQ4_XS: {
      const auto* b = reinterpret_cast<const BlockIQ4_XS*>(src);
      const float d = f16_to_f32(b->d);
      const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NLValues));
      const __m128i n4 = _mm_set1_epi8(0x0F);
      for (int ib = 0; ib < 8; ++ib) {
        const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs + 16 * ib));
        const __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(qs, n4));
        const __m128i hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(qs, 4), n4));
        const int ls = ((b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((b->scales_h >> (2 * ib)) & 3) << 4);
        const float dl = d * float(ls - 32);
        store_q32(_mm256_set_m128i(hi, lo), dl, 0.0f, dl, 0.0f, out + 32 * ib);
      }
      return true;
    }
    case GGMLType::Q4_K:
    case GGMLType::Q5_K: {
      const bool five = t == GGMLType::Q5_K;
      const uint8_t* scales = five ? reinterpret_cast<const BlockQ5_K*>(src)->scales : reinterpret_cast<const BlockQ4_K*>(src)->scales;
      const uint8_t* qs = five ? reinterpret_cast<const BlockQ5_K*>(src)->qs : reinterpret_cast<const BlockQ4_K*>(src)->qs;
      const uint16_t dd = five ? reinterpret_cast<const BlockQ5_K*>(src)->d : reinterpret_cast<const BlockQ4_K*>(src)->d;
      const uint16_t dm = five ? reinterpret_cast<const BlockQ5_K*>(src)->dmin : reinterpret_cast<const BlockQ4_K*>(src)->dmin;
      const float d = f16_to_f32(dd), dmin = f16_to_f32(dm);
      const __m256i qh = five ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const BlockQ5_K*>(src)->qh))
                              : _mm256_setzero_si256();
      const __m256i one = _mm256_set1_epi8(1);
      for (int j = 0; j < 4; ++j) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * j));
        __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if (five) {
          lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j), one), 4));
          hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j + 1), one), 4));
        }
        uint8_t sc0, m0, sc1, m1;
        kquant_scale_min(2 * j, scales, &sc0, &m0);
        kquant_scale_min(2 * j + 1, scales, &sc1, &m1);
        store_q32(lo, d * sc0, dmin * m0, d * sc0, dmin * m0, out + 64 * j);
        store_q32(hi, d * sc1, dmin * m1, d * sc1, dmin * m1, out + 64 * j + 32);
      }
      return true;
    }
    default:
      return false;
  }
}

// Row r of a Q4_K group's interleaved super-block (ops/matmul_blocks.h) to F32: its quant bytes
// gathered back into order (bytes 4r..4r+3 of each of a pair's 8 steps), then as dequant_superblock.
void dequant_q4k_group_row(const Q4KGroupBlock& g, int r, float* out) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i step = _mm256_set_epi32(224, 192, 160, 128, 96, 64, 32, 0);
  const float d = f16_to_f32(g.d[r]), dmin = f16_to_f32(g.dmin[r]);
  for (int p = 0; p < 4; ++p) {
    const __m256i q = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), reinterpret_cast<const int*>(&g.qs[p][0][4 * r]),
                                                  step, _mm256_set1_epi32(-1), 1);
    const float s0 = d * g.scales[2 * p][r], m0 = dmin * g.mins[p][r][0];
    const float s1 = d * g.scales[2 * p + 1][r], m1 = dmin * g.mins[p][r][1];
    store_q32(_mm256_and_si256(q, m4), s0, m0, s0, m0, out + 64 * p);
    store_q32(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), s1, m1, s1, m1, out + 64 * p + 32);
  }
}

// Block `unit` (steps [unit·spu, unit·spu + spu)) of up to 16 rows of a block type into B tiles at
// out (one step every kStepElems): each row's block dequantized to F32, rounded to BF16 pairs, and the
// 16 × 16 pairs of every step transposed so that tile row t holds pair t of each weight row.
void convert_rows_unit(const PanelSource& src, const uint8_t* half, int rows, int64_t unit, uint16_t* out) {
  const int spu = src.steps_per_unit, elems = 32 * spu;
  alignas(64) float f[16 * 256];
  alignas(64) uint32_t pairs[16 * 16];
  for (int r = 0; r < 16; ++r) {
    if (r >= rows) {
      std::fill(f + r * elems, f + (r + 1) * elems, 0.0f);
      continue;
    }
    if (src.q4k) {
      const auto* g = reinterpret_cast<const Q4KGroupBlock*>(half) + (r / 8) * (src.steps / 8) + unit;
      dequant_q4k_group_row(*g, r % 8, f + r * elems);
      continue;
    }
    const uint8_t* block = half + size_t(r) * src.row_stride + size_t(unit) * src.block_bytes;
    if (!dequant_superblock(src.type, block, f + r * elems)) dequantize_row(src.type, block, f + r * elems, elems);
  }
  const __m512i col = _mm512_set_epi32(240, 224, 208, 192, 176, 160, 144, 128, 112, 96, 80, 64, 48, 32, 16, 0);
  for (int k = 0; k < spu; ++k) {
    for (int r = 0; r < 16; ++r) {
      const float* fr = f + r * elems + 32 * k;
      const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_load_ps(fr + 16), _mm512_load_ps(fr));
      _mm512_store_si512(pairs + 16 * r, reinterpret_cast<const __m512i&>(v));
    }
    uint16_t* o = out + size_t(k) * kStepElems;
    for (int t = 0; t < 16; ++t)
      _mm512_store_si512(o + 32 * t, _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), kAll16,
                                                                  _mm512_add_epi32(col, _mm512_set1_epi32(t)), pairs, 4));
  }
}

// A panel's slice of weights to convert (its halves' units covering steps [s0, s1) into out, per step
// half 0 then half 1), a unit of one half at a time: the next panel's, converted between the tile
// products of the current one, so that the vector units convert while the matrix unit multiplies
// (tile products do not wait for earlier vector instructions, nor these for them). Spread evenly over
// the current panel's steps (`per` units every `every` steps): converted all at once during its first
// chunk, the conversion outlasted that chunk's products and left the matrix unit idle.
struct PanelConversion {
  const PanelSource* src = nullptr;
  const uint8_t* half[2] = {};
  int rows[2] = {};
  int np = 0;
  int64_t s0 = 0, units = 0, next = 0;  // units: np·(s1 − s0)/steps_per_unit; next: the next one
  int64_t every = 1, per = 1, count = 0;
  uint16_t* out = nullptr;

  bool done() const { return next >= units; }
  void convert_next() {
    const int spu = src->steps_per_unit;
    const int64_t s = s0 + (next / np) * spu;
    const int j = int(next % np);
    uint16_t* o = out + (s - s0) * kStepElems + j * kTileElems;
    if (src->pairs) convert_block(*src->pairs, half[j], s, o);
    else convert_rows_unit(*src, half[j], rows[j], s / spu, o);
    ++next;
  }
  // Called once per tile step of the current panel.
  void tick() {
    if (done() || ++count < every) return;
    count = 0;
    for (int64_t i = 0; i < per && !done(); ++i) convert_next();
  }
  void finish() {
    while (!done()) convert_next();
  }
};

// steps × (mt activation tiles × nt weight tiles) into the accumulators at c (ldc floats apart),
// which start from c's values (load_c) or from zero, and are stored back to c. Between steps, a
// share of the conversion `side`.
template <int mt, int nt>
void tile_steps(const uint16_t* a, const uint16_t* b, int64_t steps, float* c, int64_t ldc, bool load_c,
                PanelConversion& side) {
  const size_t ldcb = size_t(ldc) * sizeof(float);
  float* c1 = c + 16 * ldc;
  if (load_c) {
    _tile_loadd(0, c, ldcb);
    if constexpr (nt > 1) _tile_loadd(1, c + 16, ldcb);
    if constexpr (mt > 1) _tile_loadd(2, c1, ldcb);
    if constexpr (mt > 1 && nt > 1) _tile_loadd(3, c1 + 16, ldcb);
  } else {
    _tile_zero(0);
    if constexpr (nt > 1) _tile_zero(1);
    if constexpr (mt > 1) _tile_zero(2);
    if constexpr (mt > 1 && nt > 1) _tile_zero(3);
  }
  for (int64_t s = 0; s < steps; ++s, a += kStepElems, b += kStepElems) {
    _tile_loadd(4, a, 64);
    if constexpr (mt > 1) _tile_loadd(5, a + kTileElems, 64);
    _tile_loadd(6, b, 64);
    if constexpr (nt > 1) _tile_loadd(7, b + kTileElems, 64);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (nt > 1) _tile_dpbf16ps(1, 4, 7);
    if constexpr (mt > 1) _tile_dpbf16ps(2, 5, 6);
    if constexpr (mt > 1 && nt > 1) _tile_dpbf16ps(3, 5, 7);
    side.tick();
  }
  _tile_stored(0, c, ldcb);
  if constexpr (nt > 1) _tile_stored(1, c + 16, ldcb);
  if constexpr (mt > 1) _tile_stored(2, c1, ldcb);
  if constexpr (mt > 1 && nt > 1) _tile_stored(3, c1 + 16, ldcb);
}

using TileSteps = void (*)(const uint16_t*, const uint16_t*, int64_t, float*, int64_t, bool, PanelConversion&);
const TileSteps kTileSteps[2][2] = {{tile_steps<1, 1>, tile_steps<1, 2>}, {tile_steps<2, 1>, tile_steps<2, 2>}};

// Rows [r0, r1) of x (n_in floats each) into the chunked BF16 layout at a (the row block's start).
void convert_rows(const float* x, int64_t n_in, int64_t r0, int64_t r1, uint16_t* a) {
  const int64_t steps = n_in / kQK;
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n_in;
    uint16_t* ar = a + (r / kChunkRows) * steps * kStepElems + ((r % kChunkRows) / 16) * kTileElems + (r % 16) * 32;
    for (int64_t s = 0; s < steps; ++s, xr += 32, ar += kStepElems) {
      const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(xr + 16), _mm512_loadu_ps(xr));
      _mm512_store_si512(ar, reinterpret_cast<const __m512i&>(v));
    }
  }
}

}  // namespace

bool matmul_amx_compiled() { return true; }
bool matmul_amx_converts(GGMLType t) {
  return t == GGMLType::Q4_K || t == GGMLType::Q5_K || t == GGMLType::Q6_K || t == GGMLType::IQ4_XS;
}
void matmul_amx_thread_reset() { t_shape = TileShape{}; }

namespace {

void run_panels(const PanelSource& src, const float* x, int64_t n_rows, int64_t n_in, float* y, int64_t ldy,
                const float* bias, bool accumulate, ThreadPool& pool) {
  EV_CHECK(n_in == src.steps * kQK, "matmul_amx: %lld inputs for %lld steps", (long long)n_in, (long long)src.steps);
  const int64_t steps = src.steps, n_panels = (src.n_halves + 1) / 2, spu = src.steps_per_unit;
  thread_local Scratch<uint16_t> a_buf;
  const int64_t block_rows = std::min(n_rows, kRowBlock);
  uint16_t* a = a_buf.get(size_t((block_rows + kChunkRows - 1) / kChunkRows) * size_t(steps) * kStepElems);
  for (int64_t rb0 = 0; rb0 < n_rows; rb0 += kRowBlock) {
    const int64_t rb1 = std::min(n_rows, rb0 + kRowBlock), rows = rb1 - rb0;
    const int64_t n_chunks = (rows + kChunkRows - 1) / kChunkRows;
    pool.parallel_for(n_chunks, [&](int64_t c0, int64_t c1) {
      convert_rows(x + rb0 * n_in, n_in, c0 * kChunkRows, std::min(rows, c1 * kChunkRows), a);
    });
    // a slice holds whole conversion units
    const int64_t slice = (std::max<int64_t>(8, kSliceBudget / (n_chunks * kChunkRows * 64)) + spu - 1) / spu * spu;
    pool.parallel_for(n_panels, [&](int64_t p0, int64_t p1) {
      thread_local Scratch<uint16_t> b_buf;
      const size_t b_elems = size_t(std::min(slice, steps)) * kStepElems;
      uint16_t* b = b_buf.get(2 * b_elems);  // the current panel's slice and the next one's
      auto halves_in = [&](int64_t p) { return int(std::min<int64_t>(2, src.n_halves - 2 * p)); };  // of panel p
      // The conversion of panel p's slice [s0, s1), spread over n_chunks · (s1 − s0) tile steps.
      auto conversion = [&](int64_t p, int64_t s0, int64_t s1) {
        PanelConversion pc;
        pc.src = &src;
        pc.np = halves_in(p);
        for (int j = 0; j < pc.np; ++j) {
          pc.half[j] = src.half(2 * p + j);
          pc.rows[j] = src.half_rows(2 * p + j);
        }
        pc.s0 = s0;
        pc.units = pc.np * ((s1 - s0) / spu);
        const int64_t tile_steps = n_chunks * (s1 - s0);
        pc.every = std::max<int64_t>(1, tile_steps / pc.units);
        pc.per = (pc.units + tile_steps - 1) / tile_steps;
        pc.out = b + size_t((p - p0) % 2) * b_elems;
        return pc;
      };
      for (int64_t s0 = 0; s0 < steps; s0 += slice) {
        const int64_t s1 = std::min(steps, s0 + slice);
        PanelConversion next = conversion(p0, s0, s1);
        for (int64_t p = p0; p < p1; ++p) {
          next.finish();
          const uint16_t* bp = next.out;
          next = p + 1 < p1 ? conversion(p + 1, s0, s1) : PanelConversion{};
          const int np = halves_in(p);
          const int64_t o0 = 32 * p;
          const int n0 = int(std::min<int64_t>(16, src.n_out - o0));
          const int n1 = np > 1 ? int(std::min<int64_t>(16, src.n_out - o0 - 16)) : 0;
          for (int64_t c = 0; c < n_chunks; ++c) {
            const int rv = int(std::min<int64_t>(kChunkRows, rows - c * kChunkRows));
            const int r0 = std::min(16, rv), r1 = rv - r0;
            use_shape({r0, r1, n0, n1});
            kTileSteps[r1 > 0][n1 > 0](a + (c * steps + s0) * kStepElems, bp, s1 - s0,
                                       y + (rb0 + c * kChunkRows) * ldy + o0, ldy, s0 > 0 || accumulate, next);
          }
          if (bias && s1 == steps) {
            const int n = n0 + n1;
            for (int64_t r = rb0; r < rb1; ++r) {
              float* yr = y + r * ldy + o0;
              for (int i = 0; i < n; ++i) yr[i] += bias[o0 + i];
            }
          }
        }
      }
    });
  }
}

}  // namespace

void matmul_amx_pairs(const AmxPairs& m, const float* x, int64_t n_rows, int64_t n_in, float* y, int64_t ldy,
                      const float* bias, bool accumulate, ThreadPool& pool) {
  PanelSource src;
  src.n_out = m.n_out;
  src.steps = m.nb;
  src.n_halves = m.n_pairs;
  src.pairs = &m;
  run_panels(src, x, n_rows, n_in, y, ldy, bias, accumulate, pool);
}

void matmul_amx_blocks(const WeightMatrix& w, const float* x, int64_t n_rows, float* y, ThreadPool& pool,
                       const Q4KGroupBlock* q4k) {
  PanelSource src;
  src.q4k = q4k;
  src.n_out = w.n_out;
  src.steps = w.n_in / kQK;
  src.n_halves = (w.n_out + 15) / 16;
  src.steps_per_unit = int(type_block_elems(w.type) / kQK);
  src.type = w.type;
  src.data = w.data;
  src.row_stride = w.row_stride;
  src.block_bytes = type_block_bytes(w.type);
  run_panels(src, x, n_rows, w.n_in, y, w.n_out, nullptr, false, pool);
}

}  // namespace edgevlm::detail

#else  // compiled without AMX (another architecture, or a compiler without it): never called.

namespace edgevlm::detail {
bool matmul_amx_compiled() { return false; }
bool matmul_amx_converts(GGMLType) { return false; }
void matmul_amx_thread_reset() {}
void matmul_amx_pairs(const AmxPairs&, const float*, int64_t, int64_t, float*, int64_t, const float*, bool, ThreadPool&) {
  throw Error("matmul_amx_pairs: this build has no AMX kernels");
}
void matmul_amx_blocks(const WeightMatrix&, const float*, int64_t, float*, ThreadPool&, const Q4KGroupBlock*) {
  throw Error("matmul_amx_blocks: this build has no AMX kernels");
}
}  // namespace edgevlm::detail

#endif
