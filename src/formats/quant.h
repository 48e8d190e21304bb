// Number formats: GGML tensor types and their standard GGUF block layouts, bit-exact.
//   Q8_0: blocks of 32 — f16 scale d, 32 × int8 q;          x = d·q
//   Q4_0: blocks of 32 — f16 scale d, 16 bytes of nibbles;   x = d·(q − 8),
//         byte j holds element j (low nibble) and element j+16 (high nibble).
// The other block layouts are described at their structs below. The K-quants and IQ4_XS use
// super-blocks of 256 elements with 6- or 8-bit sub-block scales; Q8_K is the activation type
// the K-quant dot products pair them with (ggml's layout, never stored in a file here).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace edgevlm {

enum class GGMLType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
};

constexpr int kQK = 32;  // elements per Q8_0 / Q4_0 block

struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34);

struct BlockQ4_0 {
  uint16_t d;  // f16 scale
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// Q4_1: x = d·q + m, q in 0..15, nibbles ordered as Q4_0.
struct BlockQ4_1 {
  uint16_t d, m;  // f16 scale and offset
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

// Q5_0: x = d·(q − 16), q = nibble (as Q4_0) | bit j of qh (element j) << 4.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];  // little-endian 32-bit mask of the fifth bits
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

// Q5_1: x = d·q + m, q as Q5_0 (0..31).
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

// IQ4_NL: x = d·kIQ4NLValues[q], nibbles ordered as Q4_0 (a non-linear 4-bit grid).
struct BlockIQ4_NL {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockIQ4_NL) == 18);
extern const int8_t kIQ4NLValues[16];

constexpr int kQK_K = 256;  // elements per K-quant super-block

// Q2_K: 16 sub-blocks of 16; x = d·(sc & 15)·q − dmin·(sc >> 4), q in 0..3. Each 128-element
// half uses 32 bytes of qs: element 32·s + l of the half sits at bits 2s of byte l.
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];  // low nibble scale, high nibble min
  uint8_t qs[kQK_K / 4];
  uint16_t d, dmin;
};
static_assert(sizeof(BlockQ2_K) == 84);

// Q3_K: 16 sub-blocks of 16; x = d·(s − 32)·(q − 4), q = 2 low bits (laid out as Q2_K) | a high
// bit from hmask (element j: bit j / 32 of hmask[j % 32]); 6-bit scales s packed in 12 bytes
// (low nibbles in bytes 0-7, two high bits of sub-block j at bits 2·(j / 4) of byte 8 + j % 4).
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110);

// Q4_K: 8 sub-blocks of 32; x = d·sc·q − dmin·m, q in 0..15, 6-bit sc and m packed in 12 bytes
// (kquant_scale_min). Each 64 elements use 32 bytes: the first 32 in low nibbles, the next 32 in
// high nibbles.
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q5_K: Q4_K with a fifth bit: element 32·s + l has its high bit at bit s of qh[l].
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q6_K: 16 sub-blocks of 16; x = d·scales[s]·(q − 32), q 6 bits. Per 128 elements, 64 bytes of
// ql and 32 of qh: element 32·s + l has its low nibble in ql[l + 32·(s & 1)] (low nibble for
// s < 2, high for s ≥ 2) and its two high bits at bits 2s of qh[l].
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// Q8_K (activations): x = d·q, q = round(x·127 / max|x|) with the sign of the largest element;
// bsums[j] = Σ q over elements 16j..16j+15 (for the K-quants' min terms).
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292);

// IQ4_XS: 8 sub-blocks of 32; x = d·(ls − 32)·kIQ4NLValues[q], 6-bit ls: low 4 bits in nibble
// s % 2 of scales_l[s / 2], high 2 bits at bits 2s of scales_h. Each 32 elements use 16 bytes of
// qs, nibbles ordered as Q4_0.
struct BlockIQ4_XS {
  uint16_t d;
  uint16_t scales_h;
  uint8_t scales_l[kQK_K / 64];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockIQ4_XS) == 136);

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block.
inline void kquant_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}
// The 16 signed scales (s − 32) of a Q3_K super-block.
void q3k_scales(const uint8_t* packed, int8_t* out);
// The 6-bit scale (0..63) of sub-block j of an IQ4_XS super-block.
inline int iq4xs_scale(const BlockIQ4_XS& b, int j) {
  return ((b.scales_l[j / 2] >> (4 * (j % 2))) & 0xF) | (((b.scales_h >> (2 * j)) & 3) << 4);
}

// True for the types this engine can compute with (dequantize, matmul).
bool type_supported(GGMLType t);
// Name as GGML prints it ("f32", "q4_0", ...); "type(N)" for unknown values.
std::string type_name(GGMLType t);
// Elements per block and bytes per block; 0 for types the engine does not know at all.
size_t type_block_elems(GGMLType t);
size_t type_block_bytes(GGMLType t);
// Bytes of a row of n elements (n must be a multiple of the block size).
size_t row_bytes(GGMLType t, int64_t n);

// Half and bfloat16 conversions (round to nearest even, as numpy / ggml do).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_bf16(float f);

// x rounded to nearest (even) and clamped to ±127; NaN gives 0. Float-to-int conversion of a value
// out of range (NaN, ±Inf, overflow) is undefined behaviour in C++, so every scalar int8
// quantization of a value that may come from a file goes through here.
inline int8_t round_to_int8(float x) {
  if (!(x == x)) return 0;
  const float v = __builtin_nearbyintf(x);
  return int8_t(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v);
}

// Row conversions. n must be a multiple of type_block_elems(t). quantize_row follows ggml's
// reference quantizers without an importance matrix (what llama-quantize writes without
// --imatrix), bit for bit; Q8_K is accepted as a target (activations) but is not a file type.
void dequantize_row(GGMLType t, const void* src, float* dst, int64_t n);
// quantize_row to a block type throws edgevlm::Error naming the element when a value is NaN or
// infinite (ggml would write garbage scales; here a weight file with such values is refused).
void quantize_row(GGMLType t, const float* src, void* dst, int64_t n);

}  // namespace edgevlm
